"""A free port for, waiting on, and running a server a test starts on 127.0.0.1 (Airflow, moto, PostgreSQL,
MLflow, webhook receivers)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SCRIPTS = str(Path(__file__).resolve().parents[1] / "scripts")  # pytest has it on its path; the benchmarks not
if _SCRIPTS not in sys.path:
    sys.path.insert(0, _SCRIPTS)
from ports import free_port  # noqa: E402, F401 - re-exported: the one way tests pick a port (scripts/ports.py says why)


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Return once 127.0.0.1:`port` accepts connections; fail if `proc` exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server process exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def serve(
    cmd: list[str],
    port: int,
    log_file: Path,
    *,
    env: dict[str, str] | None = None,
    user: str | None = None,
    timeout: float = 60,
    stop_signal: int = signal.SIGTERM,
) -> Iterator[subprocess.Popen]:
    """Run a server that listens on 127.0.0.1:`port` for the duration of the block, its output in `log_file`;
    stopped by its pid (`stop_signal`, then SIGKILL after 15 s). A start failure shows the log's tail."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, user=user)
    try:
        try:
            wait_for_port(port, timeout, proc)
        except (RuntimeError, OSError) as exc:
            tail = log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{Path(cmd[0]).name}: {exc}:\n{tail}") from exc
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(stop_signal)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

"""Failpoints (mlops_core.failpoints): off unless armed; an armed point kills its process with SIGKILL the first
time it is reached (as `kill -9` would: nothing after it runs) and lets the retry through."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

SCRIPT = ("from mlops_core import failpoints; print('before', flush=True); "
          "failpoints.hit(failpoints.CHAMPION_MOVE_BETWEEN_ALIASES); print('after', flush=True)")


def _run(tmp_path, armed: str | None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_FAILPOINT")}
    if armed is not None:
        env.update(MLOPS_FAILPOINTS=armed, MLOPS_FAILPOINT_DIR=str(tmp_path))
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def test_an_unarmed_point_does_nothing(tmp_path):
    for armed in (None, "", "some.other_point"):
        proc = _run(tmp_path, armed)
        assert proc.returncode == 0 and proc.stdout.split() == ["before", "after"]
    assert list(tmp_path.iterdir()) == []


def test_an_armed_point_kills_once_then_lets_the_retry_through(tmp_path):
    first = _run(tmp_path, "x, champion_move.between_aliases")
    assert first.returncode == -signal.SIGKILL and first.stdout.split() == ["before"]
    marker = tmp_path / "failpoint.champion_move.between_aliases.fired"
    assert marker.read_text().strip().isdigit()  # the pid of the process it killed
    retry = _run(tmp_path, "champion_move.between_aliases")
    assert retry.returncode == 0 and retry.stdout.split() == ["before", "after"]

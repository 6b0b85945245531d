"""Failpoints (mlops_core.failpoints): off unless armed; an armed point kills its process with SIGKILL the first
time it is reached (as `kill -9` would: nothing after it runs) and lets the retry through."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

SCRIPT = ("import sys; from mlops_core import failpoints; print('before', flush=True); "
          "failpoints.hit(failpoints.CHAMPION_MOVE_BETWEEN_ALIASES, sys.argv[1]); print('after', flush=True)")


def _run(tmp_path, armed: str | None, scope: str = "manual__2026-03-01T00:00:00+00:00"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_FAILPOINT")}
    if armed is not None:
        env.update(MLOPS_FAILPOINTS=armed, MLOPS_FAILPOINT_DIR=str(tmp_path))
    return subprocess.run([sys.executable, "-c", SCRIPT, scope], env=env, capture_output=True, text=True, timeout=60)


def test_an_unarmed_point_does_nothing(tmp_path):
    for armed in (None, "", "some.other_point"):
        proc = _run(tmp_path, armed)
        assert proc.returncode == 0 and proc.stdout.split() == ["before", "after"]
    assert list(tmp_path.iterdir()) == []


def test_an_armed_point_kills_once_per_run_then_lets_its_retry_through(tmp_path):
    first = _run(tmp_path, "x, champion_move.between_aliases")
    assert first.returncode == -signal.SIGKILL and first.stdout.split() == ["before"]
    marker = tmp_path / "failpoint.champion_move.between_aliases.manual__2026-03-01T00_00_00_00_00.fired"
    assert [p.name for p in tmp_path.iterdir()] == [marker.name]
    pid, scope = marker.read_text().split()  # the pid of the process it killed, and the scope as given
    assert pid.isdigit() and scope == "manual__2026-03-01T00:00:00+00:00"
    retry = _run(tmp_path, "champion_move.between_aliases")
    assert retry.returncode == 0 and retry.stdout.split() == ["before", "after"]
    other_run = _run(tmp_path, "champion_move.between_aliases", scope="drift__asset_triggered__x")
    assert other_run.returncode == -signal.SIGKILL  # another run's first pass dies too
    assert len(list(tmp_path.iterdir())) == 2

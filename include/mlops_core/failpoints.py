"""Failpoints: named places where a fault drill makes the process die, as `kill -9` would, between two writes
that no outside observer can time (two MLflow calls a few milliseconds apart).

Off unless MLOPS_FAILPOINTS names the point (comma list). Each armed point fires once per MLOPS_FAILPOINT_DIR
(a marker file there, created atomically before the kill), so the retry that follows runs through: the soak
(`make soak`) arms them to check that a retry finishes what the killed try started. Nothing else sets them."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

FAILPOINTS_ENV = "MLOPS_FAILPOINTS"
FAILPOINT_DIR_ENV = "MLOPS_FAILPOINT_DIR"

# Between the champion move's two alias writes: `previous_champion` moved, `champion` not yet.
CHAMPION_MOVE_BETWEEN_ALIASES = "champion_move.between_aliases"

log = logging.getLogger(__name__)


def hit(name: str) -> None:
    """Die here (SIGKILL to this process) the first time `name` is reached while it is armed."""
    armed = {p.strip() for p in os.environ.get(FAILPOINTS_ENV, "").split(",") if p.strip()}
    if name not in armed:
        return
    marker = Path(os.environ.get(FAILPOINT_DIR_ENV) or tempfile.gettempdir()) / f"failpoint.{name}.fired"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # fired once already: the retry runs through
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    log.warning("failpoint %s: killing this process (pid %d)", name, os.getpid())
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.kill(os.getpid(), signal.SIGKILL)

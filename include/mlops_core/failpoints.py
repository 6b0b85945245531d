"""Failpoints: named places where a fault drill makes the process die, as `kill -9` would, between two writes
that no outside observer can time (two MLflow calls a few milliseconds apart).

Off unless MLOPS_FAILPOINTS names the point (comma list). An armed point fires once per scope (e.g. the run that
reached it) and MLOPS_FAILPOINT_DIR: a marker file there, `failpoint.<name>.<scope>.fired` holding the killed pid,
is created atomically before the kill, so the retry of that run runs through while another run's first pass dies
too. The soak (`make soak`) arms them to check that a retry finishes what the killed try started. Nothing else
sets them."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import tempfile
from pathlib import Path

FAILPOINTS_ENV = "MLOPS_FAILPOINTS"
FAILPOINT_DIR_ENV = "MLOPS_FAILPOINT_DIR"

# Between the champion move's two alias writes: `previous_champion` moved, `champion` not yet.
CHAMPION_MOVE_BETWEEN_ALIASES = "champion_move.between_aliases"

log = logging.getLogger(__name__)


def marker_name(name: str, scope: str | None = None) -> str:
    """The marker file's name of point `name` in `scope` (any characters but letters, digits, `-_.` become `_`)."""
    return f"failpoint.{name}.{re.sub(r'[^A-Za-z0-9_.-]', '_', scope or 'any')}.fired"


def hit(name: str, scope: str | None = None) -> None:
    """Die here (SIGKILL to this process) the first time `name` is reached in `scope` while it is armed."""
    armed = {p.strip() for p in os.environ.get(FAILPOINTS_ENV, "").split(",") if p.strip()}
    if name not in armed:
        return
    marker = Path(os.environ.get(FAILPOINT_DIR_ENV) or tempfile.gettempdir()) / marker_name(name, scope)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # fired once already: the retry runs through
    os.write(fd, f"{os.getpid()} {scope or ''}\n".encode())
    os.close(fd)
    log.warning("failpoint %s: killing this process (pid %d)", name, os.getpid())
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.kill(os.getpid(), signal.SIGKILL)

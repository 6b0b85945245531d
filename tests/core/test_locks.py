"""The runtime lock holds no development tool, the development lock pins them on the runtime's versions, and the
production image installs the runtime lock only."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_TOOLS = {"pytest", "ruff", "moto", "check-jsonschema"}


def pins(path: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.\[\]-]+)==(\S+)", path.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"\[.*\]", "", name).lower().replace("_", "-"): version for name, version in found}


def test_runtime_and_development_locks_are_separate_and_agree():
    runtime, dev = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-dev.txt")
    assert not DEV_TOOLS & set(runtime), f"development tools in the runtime lock: {DEV_TOOLS & set(runtime)}"
    assert DEV_TOOLS <= set(dev)
    shared = set(runtime) & set(dev)
    assert {name: (runtime[name], dev[name]) for name in shared if runtime[name] != dev[name]} == {}


def test_the_image_installs_the_runtime_lock_only():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert "requirements.txt" in dockerfile and "requirements-dev" not in dockerfile

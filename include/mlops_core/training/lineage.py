"""Lineage of a trained model: what data, which config, which code, which seed.

Recorded as `mlops.*` tags on the MLflow run and copied onto the registered model version, so a version
answers "where did you come from" on its own, and a manual trigger with its window, seed and trial count
reproduces it. Keys are a contract with validation/promotion, scoring and monitoring."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

TAG_PREFIX = "mlops."

# Every registered version carries all of these (tests assert it).
REQUIRED_KEYS = (
    "use_case",
    "config_hash",
    "git_sha",
    "seed",
    "engine",
    "feature_table",
    "feature_table_version",
    "label_table",
    "label_table_version",
    "window_start",
    "window_end",
    "train_start",
    "train_end",
    "validation_start",
    "validation_end",
    "test_start",
    "test_end",
    "rows_total",
    "rows_train",
    "rows_validation",
    "rows_test",
    "label_rate",
    "label_rate_train",
    "label_rate_validation",
    "label_rate_test",
    "hpo_trials",
    "hpo_trials_completed",
    "hpo_timeout_seconds",
    "hpo_metric",
    "reason",
    "orchestrator_run_id",
)


def git_sha(root: str | Path | None = None) -> str:
    """MLOPS_GIT_SHA (set by CI or the wheel build), else `git rev-parse HEAD` of the project, else unknown."""
    env = os.environ.get("MLOPS_GIT_SHA")
    if env:
        return env.strip()
    if root is None:
        from mlops_core.config import project_root

        root = project_root()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=str(root), capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else "unknown"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, 6))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def to_tags(lineage: dict[str, Any]) -> dict[str, str]:
    """Lineage as MLflow tags: `mlops.<key>` -> string (tags are strings; None becomes empty)."""
    return {f"{TAG_PREFIX}{k}": _text(v)[:5000] for k, v in sorted(lineage.items())}


def from_tags(tags: dict[str, str]) -> dict[str, str]:
    """The `mlops.*` tags of a run or version, without the prefix."""
    return {k[len(TAG_PREFIX) :]: v for k, v in tags.items() if k.startswith(TAG_PREFIX)}


def missing_keys(lineage: dict[str, Any]) -> list[str]:
    return [k for k in REQUIRED_KEYS if k not in lineage]

"""A use-case definition written as the user writes it: a dict dumped to `<name>.yaml` and loaded through the
same loader (and validator) as the shipped YAMLs."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlops_core.config import load_use_case


def load_config(tmp_path: Path, data: dict):
    """Write `data` to tmp_path/<its name>.yaml (the loader wants the file named after the use case) and load it."""
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_use_case(path=path)

"""The validator's refusals in the feature tests: a definition must fail at load with a ConfigError whose message
names the key (each expected fragment appears in it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from mlops_core.config import ConfigError


def assert_refused(load: Callable[[], Any], fragments: Iterable[str]) -> str:
    """Runs `load`, which must raise ConfigError; returns its message after checking every fragment is in it."""
    with pytest.raises(ConfigError) as err:
        load()
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    return message

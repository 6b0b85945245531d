"""Usage telemetry of the libraries the platform starts: off unless the user opts in.

MLflow (its tracking client, server and UI) and Evidently (its library and UI) report usage to their vendors by
default. Every process the project starts (make's targets, scripts/local_airflow.py's services, compose's
containers) gets the opt-out variables below. One switch opts in: MLOPS_TELEMETRY=on.

- MLflow reads MLFLOW_DISABLE_TELEMETRY (true/1) and DO_NOT_TRACK (only the value "true").
- Evidently is off when DO_NOT_TRACK is set at all (any value), so opting in means leaving it unset.
- Airflow 3.3 has no usage-data collection (the 2.x Scarf setting is gone): nothing to switch off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mlops_core.errors import ConfigError

SWITCH = "MLOPS_TELEMETRY"
OPT_OUT_ENVIRONMENT = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}


def telemetry_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True only when the user opted in (MLOPS_TELEMETRY=on); unset or "off" keeps it off."""
    value = (environ if environ is not None else os.environ).get(SWITCH, "off").strip().lower()
    if value not in ("on", "off", ""):
        raise ConfigError(f"{SWITCH}={value!r}: use 'on' to send the libraries' usage telemetry, 'off' (default) "
                          "to keep it off")
    return value == "on"


def opt_out_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables a started process needs for telemetry to stay off ({} when the user opted in)."""
    return {} if telemetry_enabled(environ) else dict(OPT_OUT_ENVIRONMENT)

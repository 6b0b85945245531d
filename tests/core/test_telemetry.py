"""Usage telemetry is off wherever the project starts something, unless MLOPS_TELEMETRY=on: checked by asking
MLflow and Evidently themselves, in a process with the environment the project hands its services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy._support import load_compose

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# variables by which MLflow decides it runs in CI or under pytest (and then stays quiet whatever else is set):
# left out, so the libraries decide from the project's settings alone
CI_MARKERS = ("CI", "PYTEST_CURRENT_TEST", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "BUILDKITE", "TF_BUILD",
              "CIRCLECI", "TRAVIS", "TEAMCITY_VERSION", "CODEBUILD_BUILD_ARN", "BITBUCKET_BUILD_NUMBER")
OPT_OUT = ("DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY", "MLOPS_TELEMETRY")

ASK_THE_LIBRARIES = """
import json, os, sys
from mlflow.telemetry import utils
from evidently import telemetry
from evidently.ui.service.components.telemetry import TelemetryComponent

answers = []
for env in json.load(sys.stdin):  # each environment in turn: the libraries read these variables at call time
    os.environ.clear()
    os.environ.update(env)
    ui_logger = TelemetryComponent().get_event_logger().func.__self__
    answers.append({"mlflow_sends": not utils.is_telemetry_disabled(),
                    "evidently_library_sends": bool(telemetry.event_logger.enabled()),
                    "evidently_ui_sends": bool(ui_logger.enabled)})
print(json.dumps({"mlflow_thinks_ci": utils._IS_IN_CI_ENV_OR_TESTING, "answers": answers}))
"""


def _asked(*envs: dict[str, str]) -> list[dict[str, bool]]:
    """What MLflow and Evidently decide in a process started with each environment (one process: importing
    them takes seconds)."""
    envs = [{k: v for k, v in env.items() if k not in CI_MARKERS} for env in envs]
    out = subprocess.run([sys.executable, "-c", ASK_THE_LIBRARIES], env=envs[0], input=json.dumps(envs),
                         capture_output=True, text=True, check=True, timeout=120)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["mlflow_thinks_ci"] is False  # else MLflow would be quiet for a reason of its own
    return answer["answers"]


def _caller_env(**extra: str) -> dict[str, str]:
    """The shell of a user who never heard of the setting (make's exports of this test run left out)."""
    return {**{k: v for k, v in os.environ.items() if k not in OPT_OUT}, **extra}


def test_the_switch():
    from mlops_core.errors import ConfigError
    from mlops_core.telemetry import opt_out_environment

    assert opt_out_environment({}) == {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}
    assert opt_out_environment({"MLOPS_TELEMETRY": "off"}) == opt_out_environment({})
    assert opt_out_environment({"MLOPS_TELEMETRY": "on"}) == {}
    with pytest.raises(ConfigError, match="MLOPS_TELEMETRY='yes'"):
        opt_out_environment({"MLOPS_TELEMETRY": "yes"})


def test_the_local_stacks_services_send_nothing_unless_opted_in(tmp_path, monkeypatch):
    """scripts/local_airflow.py's environment (make up, the demo, the e2e stack): Airflow's services, the MLflow
    server and UI, the Evidently UI and every task and job they start inherit it."""
    sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
    from local_airflow import LocalAirflow

    def services_env(**extra: str) -> dict[str, str]:
        for name in OPT_OUT:
            monkeypatch.delenv(name, raising=False)
        for name, value in extra.items():
            monkeypatch.setenv(name, value)
        return LocalAirflow(home=tmp_path / "airflow", port=18080, mlflow_port=None, spark_port=None).env()

    default, opted_in = _asked(services_env(), services_env(MLOPS_TELEMETRY="on"))
    assert default == {"mlflow_sends": False, "evidently_library_sends": False, "evidently_ui_sends": False}
    # opted in: nothing of the project's keeps the libraries quiet (their own defaults decide: on)
    assert opted_in == {"mlflow_sends": True, "evidently_library_sends": True, "evidently_ui_sends": True}
    # a stray opt-out in the user's shell does not override an explicit opt-in
    opted_in = services_env(MLOPS_TELEMETRY="on", DO_NOT_TRACK="1")
    assert "DO_NOT_TRACK" not in opted_in


@pytest.mark.parametrize("telemetry, expected", [("", "true true"), ("on", "")])
def test_make_exports_the_opt_out_to_everything_it_runs(telemetry, expected, tmp_path):
    probe = tmp_path / "probe.mk"
    probe.write_text("probe:\n\t@echo $$DO_NOT_TRACK $$MLFLOW_DISABLE_TELEMETRY\n")
    args = ["make", "-s", "--no-print-directory", "-f", "Makefile", "-f", str(probe), "probe"]
    if telemetry:
        args.append(f"MLOPS_TELEMETRY={telemetry}")
    out = subprocess.run(args, cwd=PROJECT_ROOT, env=_caller_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_every_container_of_the_project_image_has_telemetry_off():
    compose = load_compose()
    ours = [name for name, svc in compose["services"].items() if svc.get("image", "").startswith("airflow-mlops")]
    assert {"airflow-scheduler", "mlflow", "serving", "evidently"} <= set(ours)
    for name in ours:
        env = compose["services"][name].get("environment") or {}
        assert (env.get("DO_NOT_TRACK"), env.get("MLFLOW_DISABLE_TELEMETRY")) == ("true", "true"), name

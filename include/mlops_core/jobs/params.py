"""Every job's parameters, one pydantic model per job, and the one rule for values a template rendered.

How a DAG Param reaches a job (docs/architecture.md, "From Params to a job"): the task's `job_params` are
rendered by Jinja, sent as `--params '{json}'`, and validated here once, where the job starts
(runner.run_job -> parse_params). The job gets a typed object (`ctx.params`), never the raw dict.

One rule for blanks, one for booleans (also used by the Airflow plugins and the monitoring rule):
* blank: None, or a string that is empty, "None" or "null" once stripped (Jinja renders a missing value as
  "None", `tojson` as "null", `or ''` as ""): the param counts as *not given* and its default applies;
* boolean: true/false, 1/0, and the strings "true"/"false", "yes"/"no", "on"/"off", "1"/"0" in any case
  (Jinja renders a Python bool as "True"/"False"); anything else is refused, never read as false.

Any param a model does not declare is refused (extra="forbid"): a misspelt name fails the task at once
(exit code 2, no retry) instead of being silently ignored."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from mlops_core.errors import InvalidParams

BLANK_STRINGS = ("", "None", "null")
TRUE_STRINGS = ("true", "1", "yes", "on")
FALSE_STRINGS = ("false", "0", "no", "off")


def is_blank(value: Any) -> bool:
    """The one blank rule: None, "", "None" or "null" (surrounding whitespace ignored) mean "not given"."""
    return value is None or (isinstance(value, str) and value.strip() in BLANK_STRINGS)


def parse_bool(value: Any) -> bool:
    """The one boolean rule. Raises ValueError (pydantic reports it against the param) for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_STRINGS:
            return True
        if text in FALSE_STRINGS:
            return False
    raise ValueError(f"not a boolean: {value!r} (true/false, yes/no, on/off, 1/0)")


def _names(value: Any) -> Any:
    # A list, or the text a template made of one: "a,b", "['a', 'b']".
    if isinstance(value, str):
        value = [part.strip(" '\"[]") for part in value.split(",")]
    if isinstance(value, (list, tuple)):
        return [v for v in value if not is_blank(v)]
    return value


def _json_object(value: Any) -> Any:
    # A dict, or its JSON text (`| tojson`); text that is not JSON is kept as {"text": ...}.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return {"text": value}
    return value


Flag = Annotated[bool, BeforeValidator(parse_bool)]
Names = Annotated[list[str], BeforeValidator(_names)]
JsonObject = Annotated[dict[str, Any], BeforeValidator(_json_object)]
Version = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=1)]


class JobParams(BaseModel):
    """Base of every job's parameter model: blanks are dropped before validation, so defaults apply."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_not_given(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not is_blank(v)}
        return data


class MlflowParams(JobParams):
    """MLflow stores of an Airflow connection (the DAG passes them); default: the environment config."""

    mlflow_tracking_uri: str | None = None
    mlflow_registry_uri: str | None = None


class NoParams(JobParams):
    """A job without parameters (and any job this module does not know)."""


class SmokeParams(MlflowParams):
    rows: Count = 100
    check_mlflow: Flag = False  # also ask MLflow (tracking + registry) for an answer


class IngestParams(JobParams):
    sources: Names | None = None  # default: every source of the use case
    force: Flag = False  # re-read dates whose files did not change since their last ingest
    chunk_days: Count = 366  # the most dates per Spark pass
    chunk_bytes: Count = 1 << 30  # the most landing bytes per Spark pass


class FeaturesParams(JobParams):
    batch_days: Count | None = None  # dates computed per Spark pass (default: features.materialize's)


class TrainParams(MlflowParams):
    window_start: dt.date | None = None
    window_end: dt.date | None = None
    hpo_trials: int | None = Field(default=None, ge=1, le=1000)
    hpo_timeout_seconds: int | None = Field(default=None, ge=0, description="0 = no timeout")
    seed: int | None = Field(default=None, ge=0)
    feature_table_version: int | None = Field(default=None, ge=0)
    label_table_version: int | None = Field(default=None, ge=0)
    reason: str = "manual"
    register_model: Flag = False
    alias: str = "challenger"

    @model_validator(mode="after")
    def _window_in_order(self) -> TrainParams:
        if self.window_start and self.window_end and self.window_end < self.window_start:
            raise ValueError(f"window_end {self.window_end} is before window_start {self.window_start}")
        return self


class GateParams(MlflowParams):
    version: Version | None = None  # the challenger version; default: the `challenger` alias
    require_approval: Flag | None = None  # default: the use case's gate.require_approval
    triggered_by: str = "unknown"


class ScoreParams(MlflowParams):
    model_name: str | None = None  # default: the use case's registered model
    model_version: Version | None = None  # without it the job resolves model_alias itself (a manual run)
    model_alias: str | None = None
    model_run_id: str | None = None
    shadow_version: Version | None = None
    shadow_alias: str | None = None
    shadow_run_id: str | None = None
    shadow: Flag = True  # false: no shadow scoring even if a challenger exists


_RETRAIN_ONLY = ("reason", "target_dag_id", "target_run_id", "latest_date", "drifted_dates", "model_name",
                 "model_version", "rule")
_REPORT_ONLY = ("date", "reference", "reference_days", "max_rows", "seed", "log_mlflow")


class DriftParams(MlflowParams):
    action: Literal["report", "record_retrain"] = "report"
    # action=report
    date: dt.date | None = None  # the as-of date to report (default: the newest scored date by --date)
    reference: Literal["champion_training", "window"] | None = None
    reference_days: Count | None = None
    max_rows: Count | None = None
    seed: int | None = Field(default=None, ge=0)
    log_mlflow: Flag = True
    # action=record_retrain
    reason: str = "drift"
    target_dag_id: str = "retrain_model"
    target_run_id: str | None = None
    latest_date: dt.date | None = None
    drifted_dates: Names = Field(default_factory=list)
    model_name: str | None = None
    model_version: str | None = None
    rule: JsonObject | None = None

    @model_validator(mode="after")
    def _params_of_the_action(self) -> DriftParams:
        other = _RETRAIN_ONLY if self.action == "report" else _REPORT_ONLY
        wrong = sorted(set(other) & self.model_fields_set)
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not a param of action {self.action!r}")
        return self


class PromoteParams(MlflowParams):
    action: Literal["approve", "reject", "rollback"]
    version: Version | None = None  # approve / reject: the version a person decided on
    target: Annotated[str, Field(pattern=r"^(previous|[0-9]+)$")] = "previous"  # rollback: where champion goes
    reason: str  # required: it goes into the promotion history
    triggered_by: str = "manual"

    @model_validator(mode="after")
    def _version_for_a_decision(self) -> PromoteParams:
        if self.action in ("approve", "reject") and self.version is None:
            raise ValueError(f"version: {self.action} needs the model version a person decided on")
        return self


class InferenceLogParams(JobParams):
    """Compaction of the serving process's inference log (mlops_core.jobs.inference_log)."""

    date: dt.date | None = None  # the request date to compact (default: --date)
    grace_minutes: int = Field(default=10, ge=0, le=1440)  # an open (.part) file is read once its hour ended this long ago
    include_open: Flag = True  # also read the files a running endpoint still writes (read again later, never moved)
    root: str | None = None  # the log's folder (default: <data dir>/inference_log of the environment)


class AbReportParams(JobParams):
    """The online A/B report (mlops_core.jobs.ab_report)."""

    date: dt.date | None = None  # the last prediction as-of date of the window (default: --date)
    window_days: Count = 7
    known_by: dt.date | None = None  # labels landed by this date (default: every label landed so far)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1)
    min_effect: float | None = Field(default=None, gt=0)  # AUC points (binary) or relative RMSE (regression)
    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1)


# The parameter model of every job (`mlops_core.jobs.<job>`). A job not listed takes no params.
JOB_PARAMS: dict[str, type[JobParams]] = {
    "smoke": SmokeParams,
    "ingest": IngestParams,
    "features": FeaturesParams,
    "train": TrainParams,
    "gate": GateParams,
    "score": ScoreParams,
    "drift": DriftParams,
    "promote": PromoteParams,
    "inference_log": InferenceLogParams,
    "ab_report": AbReportParams,
}


def params_model(job: str) -> type[JobParams]:
    return JOB_PARAMS.get(job, NoParams)


def _problem(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown param"
    elif error["type"] != "missing" and error["type"] != "value_error":
        message += f" (got {error['input']!r})"
    return f"{where}: {message}" if where else message


def parse_params(job: str, raw: Any, model: type[JobParams] | None = None) -> JobParams:
    """Validate a job's raw params (the --params JSON) with its model. Raises InvalidParams, whose message
    names every bad param and, for an unknown one, the params the job takes."""
    model = model or params_model(job)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidParams(f"invalid {job} params: a JSON object is expected, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        message = f"invalid {job} params: {problems}"
        if any(e["type"] == "extra_forbidden" for e in exc.errors()):
            message += f" ({job} takes: {', '.join(model.model_fields) or 'no params'})"
        raise InvalidParams(message) from None

"""Request and response models of the serving API (OpenAPI at /docs).

The request is one of the MLflow / Databricks scoring formats. Rows are full feature rows, or only the entity key
(then the features come from the online store); a row always carries the key, which routes it:

    {"dataframe_records": [{"customer_id": "C000001"}, {"customer_id": "C000002", "segment": "consumer", ...}]}
    {"dataframe_split": {"columns": ["customer_id", ...], "data": [["C000001", ...]]}}
    {"instances": [{...}, ...]}                     {"inputs": [{...}, ...]} or {"inputs": {"customer_id": [...], ...}}

The response names, per row, who answered and from what, so an inference log and an online A/B report can be
built from responses alone (the next issue): request id, key, prediction, served entity, model name + version,
features source and as-of date, the shadow predictions (shadow mode) and, with explain=true, contributions.

The hot path parses with json and checks by hand (naming the field of every error); these models document the
API and are what a client can validate against."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class DataframeSplit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: list[str]
    data: list[list[Any]]
    index: list[Any] | None = None


class ScoringRequest(BaseModel):
    """Exactly one of dataframe_split, dataframe_records, instances, inputs."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"dataframe_records": [{"customer_id": "C000001"}]},
        {"dataframe_split": {"columns": ["customer_id"], "data": [["C000001"], ["C000002"]]}},
    ]})

    dataframe_split: DataframeSplit | None = None
    dataframe_records: list[dict[str, Any]] | None = None
    instances: list[dict[str, Any]] | None = None
    inputs: list[dict[str, Any]] | dict[str, list[Any]] | None = None
    explain: bool | None = Field(default=None, description="Same as the query parameter explain=true")
    params: dict[str, Any] | None = Field(default=None, description="Accepted for MLflow compatibility; unused")


class Contribution(BaseModel):
    feature: str
    contribution: float = Field(description="SHAP value in margin units (log-odds for a binary model)")


class Explanation(BaseModel):
    bias: float
    top: list[Contribution]


class ShadowPrediction(BaseModel):
    served_entity: str
    model_name: str
    model_version: int
    probability: float | None = None
    label: int | None = None
    prediction: float | None = None


class RowPrediction(BaseModel):
    key: str = Field(description="The row's entity key (a composite key: its values joined by '|' in key order, "
                                 "e.g. 'JFK|LAX')")
    status: Literal["ok", "missing_features"] = "ok"
    probability: float | None = Field(default=None, description="binary: probability of the positive class")
    label: int | None = Field(default=None, description="binary: 1 when probability >= threshold")
    prediction: float | None = Field(default=None, description="regression: the predicted value")
    missing_features: list[str] | None = Field(default=None, description="required features that were null")
    served_entity: str = Field(description="The served entity that answered: champion, challenger, ...")
    model_name: str
    model_version: int
    features_source: Literal["request", "online_store"]
    features_as_of: str | None = Field(default=None, description="As-of date of the online store row")
    shadow: list[ShadowPrediction] | None = Field(default=None, description="shadow mode: the other entities")
    contributions: Explanation | None = None


class ScoringResponse(BaseModel):
    request_id: str
    use_case: str
    mode: Literal["ab", "shadow"]
    task: Literal["binary", "regression"]
    threshold: float | None = None
    key_column: str
    key_columns: list[str] | None = Field(default=None, description="A composite key's columns, in order; every "
                                          "request row names each of them")
    store_as_of: str | None = Field(default=None, description="The online store's newest as-of date")
    predictions: list[RowPrediction]


class ErrorResponse(BaseModel):
    error_code: str
    message: str
    field: str | None = None
    row: int | None = None
    keys: list[str] | None = None
    request_id: str | None = None


class ReloadResponse(BaseModel):
    use_case: str
    changed: bool
    versions: dict[str, int]
    previous: dict[str, int]
    missing_aliases: list[str]
    seconds: float

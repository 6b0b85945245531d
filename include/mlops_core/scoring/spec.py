"""The optional `scoring` section of a use-case config: how batch scoring treats missing features, which
alias shadow-scores next to the champion, and the size of the Arrow batches fed to the model.

Example (include/config/use_cases/churn.yaml):

    scoring:
      required_features: [segment, country, plan, tenure_days]
      on_missing_features: flag     # flag: no score for that entity; score_and_flag: score it, still flagged
      max_missing_share: 0.2        # fail the run when more of the snapshot than this has missing features
      shadow_alias: challenger      # null: no shadow scoring
      arrow_batch_rows: 100000

Without the section every default applies. Plain pydantic, no heavy import: DAG files load the use case
while parsing."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class ScoringSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    required_features: list[str] | None = Field(
        default=None,
        description=(
            "Model inputs that must be non-null for a score to be trusted (e.g. attributes every known entity "
            "has). Unset = the inputs the model signature marks required. Inputs that are NULL by design "
            "(avg order value without orders) do not belong here: the model treats them as missing."
        ),
    )
    on_missing_features: Literal["flag", "score_and_flag"] = Field(
        default="flag",
        description=(
            "flag: the entity is written with feature_status 'missing_features', the missing columns and no "
            "score; score_and_flag: it is scored anyway (the model's missing-value handling) and still flagged"
        ),
    )
    max_missing_share: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Fail the run when more than this share of the snapshot has missing required features",
    )
    shadow_alias: str | None = Field(
        default="challenger",
        description="Alias scored next to the champion into gold.shadow_predictions when it exists; null = off",
    )
    arrow_batch_rows: int = Field(
        default=100_000, ge=1_000, le=5_000_000, description="Rows per Arrow batch handed to the model"
    )

    @field_validator("shadow_alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        if value is not None and not _ALIAS.match(value):
            raise ValueError(f"invalid alias {value!r}: letters, digits, _ and -")
        return value

    @field_validator("required_features")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("required_features lists a column twice")
        return value

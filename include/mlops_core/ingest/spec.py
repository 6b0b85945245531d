"""The `sources` section of a use-case config: one typed data contract per landing source."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Spark SQL type names accepted in a contract; decimal(p,s) is matched separately.
SIMPLE_TYPES = {"string", "int", "long", "double", "float", "boolean", "date", "timestamp"}
_DECIMAL = re.compile(r"^decimal\(\s*\d+\s*,\s*\d+\s*\)$")


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: str = Field(description="Spark SQL type: string, int, long, double, float, boolean, date, timestamp, decimal(p,s)")
    nullable: bool = True
    allowed: list[Any] | None = Field(default=None, description="Allowed values (categories)")
    min: float | None = None
    max: float | None = None
    format: str | None = Field(default=None, description="Parse format for date/timestamp columns in text files")
    description: str = ""

    @model_validator(mode="after")
    def _known_type(self) -> ColumnSpec:
        t = self.type.strip().lower()
        if t not in SIMPLE_TYPES and not _DECIMAL.match(t):
            raise ValueError(f"unknown type {self.type!r}; use one of {sorted(SIMPLE_TYPES)} or decimal(p,s)")
        self.type = t
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "json", "parquet"]
    path: str = Field(
        description="Folder of one day's files under storage.landing_root; {date} is the logical date (YYYY-MM-DD)"
    )
    columns: list[ColumnSpec] = Field(min_length=1)
    primary_key: list[str] = Field(min_length=1)
    event_time: str | None = Field(
        description="Column with each row's event time (date or timestamp); null for a reference table without "
        "one (e.g. a registry): its rows are then dated by when they landed (ingest_date). Required: write "
        "`event_time: null` to say so"
    )
    options: dict[str, str] = Field(default_factory=dict, description="Extra Spark reader options")
    on_missing: Literal["fail", "skip"] = Field(
        default="fail", description="When no file lands before the wait times out: fail the run or skip the source"
    )
    wait_timeout_minutes: float = Field(default=60, ge=0)
    on_extra_columns: Literal["quarantine", "flag"] = Field(
        default="quarantine",
        description="Columns (CSV header) or fields (JSON) the contract does not declare: quarantine the file "
        "(CSV/Parquet) or the row (JSON), or `flag` = load the declared columns and record a file-level flag",
    )
    description: str = ""
    from_use_case: str | None = Field(
        default=None,
        description="Set by `sources: {<name>: {from_use_case: <other>}}`: the other use case ingests this source "
        "and owns its bronze table; this one reads that table (same contract, copied from the other YAML) and "
        "does not ingest the landing files a second time",
    )

    @model_validator(mode="after")
    def _columns_consistent(self) -> SourceSpec:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names: {dupes}")
        for key in [*self.primary_key, *([self.event_time] if self.event_time else [])]:
            if key not in names:
                raise ValueError(f"{key!r} is used as a key or event time but is not a declared column")
        if "{date}" not in self.path:
            raise ValueError("path must contain {date} so each logical date reads its own files")
        return self

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def has_header(self) -> bool:
        """CSV only: whether the first line of each file is a header (reader option `header`, default true)."""
        return str(self.options.get("header", "true")).strip().lower() == "true"

    @property
    def delimiter(self) -> str:
        return self.options.get("sep") or self.options.get("delimiter") or ","

    def folder(self, landing_root: str, day: date | str) -> str:
        """The landing folder of one logical date: <landing_root>/<path with {date} = YYYY-MM-DD>."""
        text = day.isoformat() if isinstance(day, date) else str(day)
        return f"{landing_root.rstrip('/')}/{self.path.format(date=text).strip('/')}"

"""What every part of the `features` spec shares: the snapshot date column, the name pattern, strict models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

_NAME = r"^[a-z][a-z0-9_]*$"
# Columns every snapshot has besides the features; no feature may take these names.
AS_OF_DATE = "as_of_date"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

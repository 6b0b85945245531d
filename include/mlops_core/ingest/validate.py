"""Row-level typing and validation as Spark expressions (no Python UDF in the hot path).

Input: one row per record with the contract's columns as raw strings (`_raw` struct; text files) or
already typed (`_typed` struct; Parquet), plus `_parse_error` (a malformed record) and `_extra_fields`
(JSON keys the contract does not declare). Output: the typed columns and `reasons`, an array of
"code: detail" strings, empty for a good row. Every reason code is listed in REASON_CODES and in
docs/ingest.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_core.ingest.spec import ColumnSpec, SourceSpec

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

# Row-level codes (one record rejected) and file-level codes (a whole file rejected or flagged).
ROW_CODES = {
    "malformed_record": "the line does not parse: wrong number of fields, broken quoting, not a JSON object",
    "null_key": "a primary-key column is empty",
    "missing_value": "a non-nullable column is empty",
    "invalid_type": "a value does not parse as the column's type (or is NaN/Infinity)",
    "invalid_date": "a date does not match the column's format",
    "invalid_timestamp": "a timestamp does not match the column's format",
    "out_of_range": "a number is below `min` or above `max`",
    "unknown_category": "a value is not in the column's `allowed` list",
    "unexpected_fields": "a JSON record has fields the contract does not declare (on_extra_columns: quarantine)",
    "duplicate_key": "the primary key was already seen: earlier in the same day, or on an earlier ingest date",
}
FILE_CODES = {
    "empty_file": "0 bytes, or only blank lines",
    "wrong_format": "binary content, another format's extension, JSON in a CSV source, a header with no contract column",
    "not_utf8": "the file is not valid UTF-8",
    "truncated_file": "the file ends mid-record (no final newline and an incomplete last record; Parquet without footer)",
    "corrupt_file": "a Parquet file Spark cannot read",
    "missing_columns": "the header (or Parquet schema) lacks contract columns",
    "unexpected_columns": "the header (or Parquet schema) has columns the contract does not declare",
    "duplicate_columns": "the header names a column twice",
}
REASON_CODES = {**ROW_CODES, **FILE_CODES}

NUMERIC_PREFIXES = ("int", "long", "double", "float", "decimal")


def parse_column(raw: Column, col: ColumnSpec) -> Column:
    """The raw string parsed as the contract type; NULL when empty or unparseable (never an error)."""
    from pyspark.sql import functions as F

    if col.type == "string":
        return raw
    if col.type == "date":
        return F.to_date(F.try_to_timestamp(raw, F.lit(col.format))) if col.format else raw.try_cast("date")
    if col.type == "timestamp":
        return F.try_to_timestamp(raw, F.lit(col.format)) if col.format else raw.try_cast("timestamp")
    return raw.try_cast(col.type)


def column_reasons(raw: Column, typed: Column, col: ColumnSpec, is_key: bool) -> list[Column]:
    """Reason expressions for one column: each is a string when the check fails, else NULL."""
    from pyspark.sql import functions as F

    name = col.name
    present = raw.isNotNull()
    shown = F.concat(F.lit(f"{name}='"), raw, F.lit("'"))
    out: list[Column] = []
    if not col.nullable or is_key:
        code = "null_key" if is_key else "missing_value"
        suffix = " (primary key)" if is_key else ""
        out.append(F.when(~present, F.lit(f"{code}: {name} is empty{suffix}")))
    if col.type != "string":
        if col.type in ("date", "timestamp"):
            code = f"invalid_{col.type}"
            expected = f"does not match {col.format}" if col.format else f"is not a {col.type}"
        else:
            code, expected = "invalid_type", f"is not a {col.type}"
        out.append(F.when(present & typed.isNull(), F.concat(F.lit(f"{code}: "), shown, F.lit(f" {expected}"))))
    if col.type in ("double", "float"):
        not_finite = F.isnan(typed) | (F.abs(typed) == F.lit(float("inf")))
        out.append(
            F.when(typed.isNotNull() & not_finite, F.concat(F.lit("invalid_type: "), shown, F.lit(" is not finite")))
        )
    if col.min is not None:
        out.append(
            F.when(typed < F.lit(col.min), F.concat(F.lit("out_of_range: "), shown, F.lit(f" is below min {col.min:g}")))
        )
    if col.max is not None:
        out.append(
            F.when(typed > F.lit(col.max), F.concat(F.lit("out_of_range: "), shown, F.lit(f" is above max {col.max:g}")))
        )
    if col.allowed is not None:
        allowed = ", ".join(str(v) for v in col.allowed)
        out.append(
            F.when(
                typed.isNotNull() & ~typed.isin(list(col.allowed)),
                F.concat(F.lit("unknown_category: "), shown, F.lit(f" not in [{allowed}]")),
            )
        )
    return out


def validate_records(records: DataFrame, spec: SourceSpec, *, reject_extra_fields: bool) -> DataFrame:
    """Add the typed contract columns and `reasons` (array<string>, empty = good) to `records`.

    A malformed record gets only its parse error: its fields may be shifted, so field checks would
    only add noise. Pre-typed input (Parquet) carries `_typed`; text input is parsed here."""
    from pyspark.sql import functions as F

    pretyped = "_typed" in records.columns
    keys = set(spec.primary_key)
    typed_cols, checks = [], []
    for col in spec.columns:
        raw = F.col(f"_raw.`{col.name}`")
        raw = F.when(raw != "", raw)  # an empty CSV field is a missing value
        typed = F.col(f"_typed.`{col.name}`") if pretyped else parse_column(raw, col)
        typed_cols.append(typed.cast(col.type).alias(col.name))
        checks.extend(column_reasons(raw, typed, col, col.name in keys))
    if reject_extra_fields and "_extra_fields" in records.columns:
        checks.append(
            F.when(
                F.size(F.coalesce(F.col("_extra_fields"), F.array().cast("array<string>"))) > 0,
                F.concat(F.lit("unexpected_fields: "), F.array_join(F.col("_extra_fields"), ", ")),
            )
        )
    field_reasons = F.filter(F.array(*checks), lambda r: r.isNotNull())
    reasons = F.when(F.col("_parse_error").isNotNull(), F.array(F.col("_parse_error"))).otherwise(field_reasons)
    return records.select("*", *typed_cols, reasons.alias("reasons"))

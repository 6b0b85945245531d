"""The inference log as a Delta table: the daily compaction of the serving process's JSON-lines files into
monitoring.inference_log, and the mapping of a Databricks AI Gateway inference table to the same columns.

Compaction of a date D (`compact`):
  1. the files of D: closed ones (`*.jsonl`) under <root>/<use case>/request_date=D/, open ones (`*.jsonl.part`)
     only when their hour ended more than `grace_minutes` ago (a process that died without closing them), and
     the files an earlier compaction of D already moved to <root>/<use case>/_compacted/request_date=D/;
  2. read with one Spark JSON scan (explicit schema; a torn last line of a crashed writer is dropped), each
     (databricks_request_id, key) once (at-least-once writing may repeat a request);
  3. replace the partition request_date = D of monitoring.inference_log (replaceWhere: a rerun rewrites it);
  4. move the new files to _compacted/: a later compaction of another date never reads them, and a rerun of D
     reads them again, so it gives the same partition (plus any late file). Idempotent.

Databricks (`from_databricks_payload`): the AI Gateway inference table of a Model Serving endpoint,
<catalog>.<use case>_monitoring.inference_log_payload (serving/databricks.py), holds one row per REQUEST with the
request and response JSON as text. Its columns: databricks_request_id, client_request_id, request_date,
request_time, status_code, sampling_fraction, execution_duration_ms, request, response, served_entity_id,
logging_error_codes, requester. The mapping explodes the request's rows (any MLflow scoring format) and the
response's `predictions` into one row per request row with the columns below; served_entity_id becomes the
served entity's name and version through the endpoint's config (`served_entities`)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_core import tables
from mlops_core.errors import InputError
from mlops_core.serving.inference_log import CLOSED_SUFFIX, OPEN_SUFFIX, PARTITION, date_dir, use_case_dir

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from mlops_core.lakehouse import Lakehouse

log = logging.getLogger("mlops.monitoring.inference_log")

COMPACTED = "_compacted"
DEDUP_KEYS = ("databricks_request_id", "key")

# (column, Spark SQL type): the table's columns in order; JSON lines hold the same names.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("databricks_request_id", "string"),
    ("client_request_id", "string"),
    ("request_time", "timestamp"),
    ("status_code", "int"),
    ("execution_duration_ms", "double"),
    ("sampling_fraction", "double"),
    ("use_case", "string"),
    ("mode", "string"),
    ("event_time", "timestamp"),
    ("request_row", "int"),
    ("key", "string"),
    ("served_entity_name", "string"),
    ("model_name", "string"),
    ("model_version", "int"),
    ("features_source", "string"),
    ("features_as_of", "date"),
    ("row_status", "string"),
    ("probability", "double"),
    ("label", "int"),
    ("prediction", "double"),
    ("shadow_predictions", "string"),
    ("request_features", "string"),
    ("error_code", "string"),
    ("error_message", "string"),
    ("logged_by", "string"),
    (PARTITION, "date"),
)


def add_missing_columns(spark: SparkSession, lakehouse: Lakehouse, table, columns: list[tuple[str, str, str]]) -> list[str]:
    """ALTER TABLE ADD COLUMNS for the (name, type, comment) columns an existing table lacks (a table written
    before they were introduced: old rows read them as null). Returns the names added."""
    if not lakehouse.exists(spark, table):
        return []
    have = set(lakehouse.read(spark, table).columns)
    missing = [c for c in columns if c[0] not in have]
    if missing:
        spec = ", ".join(f"`{n}` {t} COMMENT '{c.replace(chr(39), chr(39) * 2)}'" for n, t, c in missing)
        spark.sql(f"ALTER TABLE {lakehouse.identifier(table)} ADD COLUMNS ({spec})")
        log.info("%s: added column(s) %s", lakehouse.identifier(table), [c[0] for c in missing])
    return [c[0] for c in missing]


NEW_COLUMNS = [("request_features", "string", "A full-row request's declared feature values (JSON text); null "
                "when the features came from the online store (features_source, features_as_of)")]


def schema_ddl() -> str:
    return ", ".join(f"`{c}` {t}" for c, t in COLUMNS)


def _json_schema():
    """What the JSON lines are read as: timestamps and dates as text first (then cast: Spark's JSON timestamp
    inference depends on the session's time zone and format options)."""
    return ", ".join(f"`{c}` {'string' if t in ('timestamp', 'date') else t}" for c, t in COLUMNS)


def _typed(df: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    out = []
    for c, t in COLUMNS:
        if t == "timestamp":
            out.append(F.to_timestamp(F.col(c)).alias(c))
        elif t == "date":
            out.append(F.to_date(F.col(c)).alias(c))
        else:
            out.append(F.col(c).cast(t).alias(c))
    return df.select(*out)


def _file_hour(path: Path, day: date) -> datetime:
    hour = int(path.name[:2]) if path.name[:2].isdigit() else 23
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def pending_files(root: str | Path, use_case: str, day: date, grace_minutes: int = 10,
                  now: datetime | None = None) -> tuple[list[Path], list[Path]]:
    """(files not compacted yet, files an earlier compaction of `day` moved aside) of the date."""
    now = now or datetime.now(UTC)
    folder = date_dir(root, use_case, day)
    new: list[Path] = []
    if folder.is_dir():
        for f in sorted(folder.iterdir()):
            if f.name.endswith(CLOSED_SUFFIX):
                new.append(f)
            elif f.name.endswith(OPEN_SUFFIX) and _file_hour(f, day) + timedelta(hours=1, minutes=grace_minutes) <= now:
                new.append(f)  # a writer that died with the file open: its hour is long over
    done_dir = use_case_dir(root, use_case) / COMPACTED / f"{PARTITION}={day.isoformat()}"
    done = sorted(f for f in done_dir.iterdir() if f.is_file()) if done_dir.is_dir() else []
    return new, done


def read_files(spark: SparkSession, files: list[Path]) -> DataFrame:
    """The JSON lines of `files` with the table's schema (torn lines dropped)."""
    df = (spark.read.schema(_json_schema()).option("mode", "DROPMALFORMED")
          .json([str(f) for f in files]))
    return _typed(df)


def empty_frame(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], schema_ddl())


def deduplicate(df: DataFrame) -> DataFrame:
    """Each (databricks_request_id, key) once: the first-logged copy (a request repeated by at-least-once
    writing is the same record)."""
    return df.dropDuplicates(list(DEDUP_KEYS))


def open_files(root: str | Path, use_case: str, day: date, skip: list[Path]) -> list[Path]:
    """The date's `.part` files a live writer is still appending to (not in `skip`)."""
    folder = date_dir(root, use_case, day)
    return sorted(f for f in folder.iterdir() if f.name.endswith(OPEN_SUFFIX) and f not in skip) \
        if folder.is_dir() else []


def compact(spark: SparkSession, lakehouse: Lakehouse, root: str | Path, day: date, *, grace_minutes: int = 10,
            now: datetime | None = None, include_open: bool = False) -> dict[str, Any]:
    """Compact the JSON-lines files of `day` into the partition request_date = day of monitoring.inference_log;
    returns {date, files_new, files_reread, rows_read, rows, duplicates_dropped, table_version, seconds}.
    `include_open`: also read the files a running endpoint is still writing (the partition is fresh to the last
    flush); they are read again, never moved, until their writer closes them (duplicates are dropped)."""
    from pyspark.sql import functions as F

    started = time.perf_counter()
    use_case = lakehouse.use_case
    new, done = pending_files(root, use_case, day, grace_minutes, now)
    live = open_files(root, use_case, day, new) if include_open else []
    files = new + done + live
    if not files:
        return {"status": "no_data", "date": day.isoformat(), "files_new": 0, "files_reread": 0, "rows": 0,
                "reason": f"no inference log file under {date_dir(root, use_case, day)}"}
    add_missing_columns(spark, lakehouse, tables.INFERENCE_LOG, NEW_COLUMNS)
    raw = read_files(spark, files).where(F.col(PARTITION) == F.lit(day)).cache()
    try:
        rows_read = raw.count()
        deduped = deduplicate(raw)
        rows = deduped.count()
        version = lakehouse.replace_partitions(deduped.select(*[c for c, _ in COLUMNS]), tables.INFERENCE_LOG,
                                               PARTITION, [day])
    finally:
        raw.unpersist()
    moved = _move_aside(root, use_case, day, new)
    out = {"status": "ok", "date": day.isoformat(), "files_new": len(new), "files_reread": len(done),
           "files_open": len(live),
           "files_moved": moved, "rows_read": rows_read, "rows": rows, "duplicates_dropped": rows_read - rows,
           "table": lakehouse.identifier(tables.INFERENCE_LOG), "table_version": version,
           "seconds": round(time.perf_counter() - started, 3)}
    log.info("inference log %s %s: %s rows from %s new + %s compacted files (%s duplicates dropped), version %s",
             use_case, day, rows, len(new), len(done), rows_read - rows, version)
    return out


def _move_aside(root: str | Path, use_case: str, day: date, files: list[Path]) -> int:
    target = use_case_dir(root, use_case) / COMPACTED / f"{PARTITION}={day.isoformat()}"
    target.mkdir(parents=True, exist_ok=True)
    moved = 0
    for f in files:
        name = f.name[: -len(OPEN_SUFFIX)] + CLOSED_SUFFIX if f.name.endswith(OPEN_SUFFIX) else f.name
        dest = target / name
        if dest.exists():  # the same name compacted before: keep both, never overwrite
            dest = target / f"{dest.stem}.{int(time.time() * 1000)}{CLOSED_SUFFIX}"
        shutil.move(str(f), dest)
        moved += 1
    if moved:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return moved


def read_log(spark: SparkSession, lakehouse: Lakehouse) -> DataFrame:
    if not lakehouse.exists(spark, tables.INFERENCE_LOG):
        raise InputError(f"{lakehouse.identifier(tables.INFERENCE_LOG)} does not exist: run the inference_log job "
                         "(compaction) first")
    return lakehouse.read(spark, tables.INFERENCE_LOG)


# ---- Databricks AI Gateway inference table -------------------------------------------------------------
DATABRICKS_PAYLOAD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("databricks_request_id", "string"),
    ("client_request_id", "string"),
    ("request_date", "date"),
    ("request_time", "timestamp"),
    ("status_code", "int"),
    ("sampling_fraction", "double"),
    ("execution_duration_ms", "bigint"),
    ("request", "string"),
    ("response", "string"),
    ("served_entity_id", "string"),
    ("logging_error_codes", "array<string>"),
    ("requester", "string"),
)


def databricks_payload_ddl() -> str:
    return ", ".join(f"`{c}` {t}" for c, t in DATABRICKS_PAYLOAD_COLUMNS)


def from_databricks_payload(payload: DataFrame, *, key: str | list[str], use_case: str, task: str, threshold: float = 0.5,
                            served_entities: dict[str, dict[str, Any]] | None = None,
                            mode: str = "ab", features: list[str] | tuple[str, ...] = ()) -> DataFrame:
    """The rows of an AI Gateway inference table (`payload`, its schema: DATABRICKS_PAYLOAD_COLUMNS) as the
    columns of monitoring.inference_log, one row per request row.

    `served_entities`: {served_entity_id: {"name": ..., "model_name": ..., "model_version": ...}} from the
    endpoint's config (GET /api/2.0/serving-endpoints/<name>: config.served_entities[].{id?, name,
    entity_name, entity_version}); an id not listed keeps the id as the name. The request's rows come from any
    MLflow scoring format (dataframe_records, dataframe_split, instances, inputs); the response's predictions
    are `{"predictions": [...]}` of numbers (a binary model's probability, a regression's value) or of objects
    with probability/prediction. Features always come from the request (Databricks has no online store
    lookup here); requester is left out (an identity, not needed). `features`: the model's declared feature
    columns, kept per row in request_features (JSON text; any other field of the request is left out)."""
    from pyspark.sql import functions as F

    entities = served_entities or {}
    ent_rows = [(k, str(v.get("name", k)), v.get("model_name"),
                 None if v.get("model_version") is None else int(v["model_version"])) for k, v in entities.items()]
    spark = payload.sparkSession
    ent_df = spark.createDataFrame(ent_rows, "served_entity_id string, served_entity_name string, "
                                             "model_name string, model_version int")

    # The request/response JSON is parsed on the driver (a day of an endpoint's requests; no Python worker)
    parsed = []
    for r in payload.select("databricks_request_id", "request", "response").toLocalIterator():
        keys = _request_keys(r["request"], key)
        values = _response_values(r["response"])
        sent = _request_features(r["request"], features) if features and keys else []
        for i, k in enumerate(keys or [None]):
            v = values[i] if i < len(values) else None
            parsed.append((r["databricks_request_id"], i, None if k is None else str(k), v, i if keys else None,
                           sent[i] if i < len(sent) else None))
    rows_df = spark.createDataFrame(parsed, "databricks_request_id string, _pos int, _key string, _value double, "
                                            "_row int, _features string")
    exploded = payload.join(rows_df, "databricks_request_id", "left").withColumn(
        "_r", F.struct(F.col("_key").alias("key"), F.col("_value").alias("value"), F.col("_row").alias("row"),
                       F.col("_features").alias("features")))
    binary = task == "binary"
    ok = F.col("status_code") == 200
    value = F.col("_r.value")
    mapped = exploded.join(F.broadcast(ent_df), "served_entity_id", "left").select(
        F.col("databricks_request_id"),
        F.col("client_request_id"),
        F.col("request_time").cast("timestamp").alias("request_time"),
        F.col("status_code").cast("int").alias("status_code"),
        F.col("execution_duration_ms").cast("double").alias("execution_duration_ms"),
        F.col("sampling_fraction").cast("double").alias("sampling_fraction"),
        F.lit(use_case).alias("use_case"),
        F.lit(mode).alias("mode"),
        F.lit(None).cast("timestamp").alias("event_time"),
        F.col("_r.row").alias("request_row"),
        F.col("_r.key").alias("key"),
        F.coalesce(F.col("served_entity_name"), F.col("served_entity_id")).alias("served_entity_name"),
        F.col("model_name"),
        F.col("model_version"),
        F.when(ok, F.lit("request")).alias("features_source"),
        F.lit(None).cast("date").alias("features_as_of"),
        F.when(ok & value.isNotNull(), F.lit("ok")).when(ok, F.lit("missing_features"))
        .otherwise(F.lit("error")).alias("row_status"),
        (value if binary else F.lit(None).cast("double")).alias("probability"),
        (F.when(value.isNotNull(), (value >= F.lit(float(threshold))).cast("int")) if binary
         else F.lit(None).cast("int")).alias("label"),
        (F.lit(None).cast("double") if binary else value).alias("prediction"),
        F.lit(None).cast("string").alias("shadow_predictions"),
        F.when(ok, F.col("_r.features")).alias("request_features"),
        F.when(~ok, F.concat_ws(",", F.col("logging_error_codes"))).alias("error_code"),
        F.when(~ok, F.substring(F.col("response"), 1, 500)).alias("error_message"),
        F.lit("databricks").alias("logged_by"),
        F.coalesce(F.col("request_date"), F.to_date("request_time")).alias(PARTITION),
    )
    return _typed(mapped)


def _response_values(response: str | None) -> list[float | None]:
    """The per-row values of a scoring response's `predictions` (numbers, objects or class-probability lists)."""
    import json

    try:
        body = json.loads(response) if response else {}
    except ValueError:
        return []
    values = body.get("predictions", []) if isinstance(body, dict) else body
    out: list[float | None] = []
    for v in values if isinstance(values, list) else []:
        if isinstance(v, dict):
            v = v.get("probability", v.get("prediction"))
        if isinstance(v, list):  # [p0, p1]
            v = v[-1] if v else None
        out.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
    return out


def _request_features(request: str | None, features: list[str] | tuple[str, ...]) -> list[str | None]:
    """Per request row, the JSON text of its values of `features` (the model's declared inputs) in any MLflow
    format; a row that sent none of them is null (a key-only row). [] when the request is unreadable."""
    import json

    from mlops_core.serving.endpoint import ServingError, parse_rows

    try:
        rows = parse_rows(json.loads(request) if request else None)
    except (ValueError, ServingError):
        return []
    names = list(features)
    return [json.dumps({c: row.get(c) for c in names}) if any(c in row for c in names) else None for row in rows]


def _request_keys(request: str | None, key: str | list[str]) -> list[Any]:
    """The entity keys of a scoring request's rows, in order (any MLflow format); [] when unreadable. A composite
    key (a list of columns): each row's values joined by KEY_SEPARATOR ('JFK|LAX'), None when one is missing."""
    import json

    if not isinstance(key, str):
        from mlops_core.config.use_case import KEY_SEPARATOR

        if len(key) == 1:
            return _request_keys(request, key[0])
        parts = [_request_keys(request, k) for k in key]
        n = max(len(p) for p in parts)
        return [None if any(i >= len(p) or p[i] is None for p in parts) else KEY_SEPARATOR.join(str(p[i]) for p in parts)
                for i in range(n)]

    try:
        body = json.loads(request) if request else {}
    except ValueError:
        return []
    if not isinstance(body, dict):
        return []
    split = body.get("dataframe_split")
    if isinstance(split, dict):
        cols = split.get("columns") or []
        if key in cols:
            i = cols.index(key)
            return [r[i] if isinstance(r, list) and i < len(r) else None for r in split.get("data") or []]
        return []
    for fmt in ("dataframe_records", "instances", "inputs"):
        value = body.get(fmt)
        if isinstance(value, list):
            return [r.get(key) if isinstance(r, dict) else None for r in value]
        if isinstance(value, dict) and isinstance(value.get(key), list):
            return list(value[key])
    return []

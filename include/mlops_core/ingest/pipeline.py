"""Ingest one source for one or more logical dates: landing files → bronze.<source> + bronze.quarantine.

For each date the whole landing folder is read again and the date's partitions are replaced, so a rerun
or a backfill never duplicates rows:
  bronze.<source>     replaceWhere ingest_date IN (dates)
  bronze.quarantine   replaceWhere source = <source> AND ingest_date IN (dates)
  ops.ingest_log      appended: per (source, date, run) an `in_progress` row with the file manifest
                      fingerprint before the first write, and after the last an `ingested` row with the
                      counts and the table versions (an audit trail; the newest row per date counts)

The three commits cannot be one: a run killed between them leaves the date's newest log row `in_progress`
(unfinished_dates), never the old delivery's counts next to the new delivery's bronze rows as if the day were
done, and the next run re-reads the date whatever its fingerprint.

Every record read ends either in bronze or in quarantine (read = good + quarantined). Duplicate primary
keys keep the first occurrence: the earliest ingest date, then file path, then line; the others are
quarantined as duplicate_key, also when the first one was ingested on an earlier date. A reference table
(`event_time: null`, e.g. a registry) is the exception across dates: a key landing again on a later date is
that record's new version (features read the newest version landed by each date), so only duplicates within
one day are quarantined.

Without `force`, a date whose files (names, sizes, modification times) and contract are unchanged since
its last ingest is not read again: its previous counts are returned with status `unchanged`."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from mlops_core.errors import is_delta_conflict
from mlops_core.ingest import reader
from mlops_core.ingest.landing import LandingFile, list_folders, manifest_hash
from mlops_core.ingest.spec import SourceSpec
from mlops_core.ingest.validate import validate_records
from mlops_core.lakehouse import Lakehouse, Table, partition_predicate
from mlops_core.tables import INGEST_DATE, INGEST_RUN_ID, INGESTED_AT, QUARANTINE, SOURCE_FILE, bronze

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger("mlops.ingest")

# Written and read only by this stage: which files each (source, date) was built from.
INGEST_LOG = Table("ops", "ingest_log")
# The status of the log row a pass appends before its first write; its final row says `ingested`.
IN_PROGRESS = "in_progress"

QUARANTINE_DDL = (
    "source STRING, ingest_date DATE, level STRING, reasons ARRAY<STRING>, raw STRING, "
    "_source_file STRING, line_number INT, record_count BIGINT, _ingest_run_id STRING, _ingested_at TIMESTAMP"
)
INGEST_LOG_DDL = (
    "source STRING, ingest_date DATE, status STRING, manifest_hash STRING, config_hash STRING, files INT, "
    "files_quarantined INT, `read` BIGINT, good BIGINT, quarantined BIGINT, flags ARRAY<STRING>, "
    "bronze_version BIGINT, quarantine_version BIGINT, _ingest_run_id STRING, _ingested_at TIMESTAMP"
)


class MissingLandingFiles(RuntimeError):
    """A source with on_missing=fail has no file for some dates."""


@dataclass
class DateResult:
    date: str
    status: str  # ingested | unchanged | missing
    files: int = 0
    files_quarantined: int = 0
    read: int = 0
    good: int = 0
    quarantined: int = 0
    flags: list[str] = field(default_factory=list)


@dataclass
class SourceResult:
    source: str
    dates: dict[str, DateResult] = field(default_factory=dict)
    bronze_version: int | None = None
    quarantine_version: int | None = None
    # reason code -> quarantine entries of this run: rows for row-level codes, files for file-level ones
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # time per step, summed over the passes

    def total(self, key: str) -> int:
        return sum(getattr(d, key) for d in self.dates.values())

    @property
    def counts(self) -> dict[str, int]:
        return {k: self.total(k) for k in ("read", "good", "quarantined", "files", "files_quarantined")}

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.counts,
            "bronze_version": self.bronze_version,
            "quarantine_version": self.quarantine_version,
            "reasons": dict(sorted(self.reasons.items())),
            "seconds": self.seconds,
            "dates": {d: asdict(r) for d, r in sorted(self.dates.items())},
        }


# ---- schemas ----------------------------------------------------------------------------------------
def bronze_schema(spec: SourceSpec) -> StructType:
    from pyspark.sql.types import StructType, _parse_datatype_string

    schema = StructType()
    for c in spec.columns:
        schema.add(c.name, _parse_datatype_string(c.type), True)
    for name, dtype in ((INGEST_DATE, "date"), (SOURCE_FILE, "string"), (INGEST_RUN_ID, "string"),
                        (INGESTED_AT, "timestamp")):
        schema.add(name, _parse_datatype_string(dtype), True)
    return schema


# ---- writes -----------------------------------------------------------------------------------------
T = TypeVar("T")


def with_conflict_retry(fn: Callable[[], T], what: str, attempts: int = 6) -> T:
    """Delta optimistic concurrency: sources are ingested in parallel and share bronze.quarantine and
    ops.ingest_log. Their partitions are disjoint, but two first writers can race to create a table."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_delta_conflict(exc):
                raise
            wait = min(2**attempt, 20) * (0.5 + random.random())
            log.warning("%s: concurrent Delta commit (%s); retry %d in %.1fs", what, type(exc).__name__, attempt, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def replace_where(lh: Lakehouse, df: DataFrame, table: Table, predicate: str, partition_by: Sequence[str]) -> int | None:
    """Overwrite exactly the rows matching `predicate` with `df` (which must all match it)."""

    def write() -> int | None:
        writer = df.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
        writer = writer.partitionBy(*partition_by)
        # Lakehouse._save resolves a path or a Unity Catalog name the same way replace_partitions does.
        lh._save(writer, table)
        return lh.version(df.sparkSession, table)

    return with_conflict_retry(write, str(table))


def _source_predicate(source: str, dates: Sequence[date]) -> str:
    return f"source = '{source}' AND {partition_predicate(INGEST_DATE, dates)}"


# ---- the stage --------------------------------------------------------------------------------------
def ingest_source(
    spark: SparkSession,
    lh: Lakehouse,
    source: str,
    spec: SourceSpec,
    dates: Sequence[date],
    *,
    landing_root: str,
    run_id: str,
    config_hash: str = "",
    force: bool = False,
    chunk_days: int = 366,
    chunk_bytes: int = 1 << 30,
    ingested_at: datetime | None = None,
) -> SourceResult:
    """Ingest `source` for `dates` in date order, in Spark passes of at most `chunk_days` dates and about
    `chunk_bytes` of landing files (each pass pays its own Delta commits: bronze, quarantine and two log appends,
    so a small backfill is one pass)."""
    ingested_at = ingested_at or datetime.now(UTC)
    result = SourceResult(source=source)
    folders = {d: spec.folder(landing_root, d) for d in sorted(set(dates))}
    listed = list_folders(folders.values())
    listing = {d: listed[folder] for d, folder in folders.items()}
    missing = [d for d, files in listing.items() if not files]
    if missing and spec.on_missing == "fail":
        shown = ", ".join(d.isoformat() for d in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise MissingLandingFiles(
            f"{source}: no landing files for {shown} under {spec.folder(landing_root, '{date}')} "
            f"(on_missing: fail)"
        )
    for d in missing:
        result.dates[d.isoformat()] = DateResult(d.isoformat(), "missing")
        log.warning("%s %s: no landing files, skipped (on_missing: skip)", source, d)

    hashes = {d: manifest_hash(files, config_hash) for d, files in listing.items() if files}
    todo = sorted(hashes)
    if not force and todo:
        previous = latest_log(spark, lh, source, todo)
        if previous and lh.exists(spark, bronze(source)):
            for d in list(todo):
                row = previous.get(d)
                if row and row["status"] == "ingested" and row["manifest_hash"] == hashes[d]:
                    result.dates[d.isoformat()] = DateResult(
                        d.isoformat(), "unchanged", row["files"], row["files_quarantined"], row["read"],
                        row["good"], row["quarantined"], list(row["flags"] or []),
                    )
                    todo.remove(d)
                    log.info("%s %s: files unchanged since run %s, not re-read (force to redo)",
                             source, d, row["_ingest_run_id"])

    for chunk in plan_chunks(todo, listing, chunk_days, chunk_bytes):
        _ingest_chunk(spark, lh, source, spec, {d: listing[d] for d in chunk}, hashes, config_hash, run_id,
                      ingested_at, result)
    if result.bronze_version is None:
        result.bronze_version = lh.version(spark, bronze(source))
    if result.quarantine_version is None:
        result.quarantine_version = lh.version(spark, QUARANTINE)
    return result


def plan_chunks(dates: Sequence[date], listing: dict[date, list[LandingFile]], max_days: int,
                max_bytes: int) -> list[list[date]]:
    """Consecutive runs of `dates` with at most `max_days` dates and, unless a single date is bigger,
    at most `max_bytes` of files."""
    chunks: list[list[date]] = []
    current: list[date] = []
    size = 0
    for d in dates:
        day_bytes = sum(f.size for f in listing[d])
        if current and (len(current) >= max(max_days, 1) or size + day_bytes > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(d)
        size += day_bytes
    if current:
        chunks.append(current)
    return chunks


def latest_log(spark: SparkSession, lh: Lakehouse, source: str, dates: Sequence[date]) -> dict[date, Any]:
    """The newest ops.ingest_log row of each date that has one: the latest `_ingested_at` (the run's start), and of
    one run its final row over its `in_progress` row."""
    if not lh.exists(spark, INGEST_LOG):
        return {}
    rows = lh.read(spark, INGEST_LOG).where(_source_predicate(source, dates)).collect()
    latest: dict[date, Any] = {}
    for r in sorted(rows, key=lambda r: (r["_ingested_at"], r["_ingest_run_id"], r["status"] != IN_PROGRESS)):
        latest[r["ingest_date"]] = r
    return latest


def unfinished_dates(spark: SparkSession, lh: Lakehouse, source: str, dates: Sequence[date]) -> list[date]:
    """Dates whose newest ingest stopped before its last table (newest log row `in_progress`): bronze may already
    hold the new delivery while quarantine and the counts do not; the day is complete once a rerun finishes."""
    return sorted(d for d, r in latest_log(spark, lh, source, dates).items() if r["status"] == IN_PROGRESS)


def _date_map(path_dates: dict[str, date]):
    from pyspark.sql import functions as F

    pairs = []
    for path, d in sorted(path_dates.items()):
        pairs += [F.lit(path), F.lit(d)]
    return F.create_map(*pairs)


def _ingest_chunk(
    spark: SparkSession,
    lh: Lakehouse,
    source: str,
    spec: SourceSpec,
    listing: dict[date, list[LandingFile]],
    hashes: dict[date, str],
    config_hash: str,
    run_id: str,
    ingested_at: datetime,
    result: SourceResult,
) -> None:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    dates = sorted(listing)
    date_of = {f.path: d for d, files in listing.items() for f in files}
    files = [f for d in dates for f in listing[d]]
    t0 = time.monotonic()
    steps: dict[str, float] = {}

    clock = [t0]

    def step(name: str) -> None:
        now = time.monotonic()
        steps[name] = round(steps.get(name, 0.0) + now - clock[0], 2)
        clock[0] = now

    # 0. The files' bytes, fetched from storage once (on S3 each fetch is several requests per file): the file checks
    # and the records below both read them from here. Parquet files are checked from their bytes but read as
    # Parquet, so theirs are not kept.
    content = reader.load_files(spark, [f.path for f in files if f.size > 0])
    keep = content is not None and spec.format != "parquet"
    if keep:
        content = content.persist(StorageLevel.MEMORY_AND_DISK)
    final = None
    try:
        # 1-2. File-level checks.
        facts = reader.inspect_files(spark, files, content)
        verdicts = [reader.check_file(facts[f.path], spec) for f in files]
        if spec.format == "parquet":
            reader.parquet_schema_checks(spark, spec, verdicts)
        file_rows = []
        for v in verdicts:
            if v.rejected or v.flags:
                f = facts[v.path]
                desc = f"{v.path.rsplit('/', 1)[-1]}: {f.size} bytes, {v.records} records"
                if f.valid_utf8 and not f.has_nul and f.first_line:
                    desc += f"; first line: {f.first_line[:200]!r}"
                file_rows.append(
                    (source, date_of[v.path], "file", [*v.rejected, *v.flags], desc, v.path, None,
                     v.records if v.rejected else 0, run_id, ingested_at)
                )

        # 3. Records of accepted files, typed and validated.
        step("inspect_files")
        records = reader.read_records(spark, spec, verdicts, content)
        bronze_cols = [c.name for c in spec.columns]
        meta = [
            F.lit(run_id).alias(INGEST_RUN_ID),
            F.lit(ingested_at).cast("timestamp").alias(INGESTED_AT),
        ]
        if records is not None:
            validated = validate_records(records, spec, reject_extra_fields=spec.on_extra_columns == "quarantine")
            validated = validated.withColumn(INGEST_DATE, _date_map(date_of)[F.col("_source_file")])
            final = _dedupe(spark, lh, source, spec, validated, dates).persist(StorageLevel.MEMORY_AND_DISK)

        counts: dict[tuple[date, bool], int] = Counter()
        if final is not None:
            # One small aggregation gives the per-date counts and the rows per reason code.
            codes = F.array_sort(F.array_distinct(F.transform("reasons", lambda r: F.substring_index(r, ":", 1))))
            for r in final.groupBy(INGEST_DATE, codes.alias("codes")).count().collect():
                counts[(r[INGEST_DATE], not r["codes"])] += r["count"]
                for code in r["codes"]:
                    result.reasons[code] = result.reasons.get(code, 0) + r["count"]
            good = final.where(F.size("reasons") == 0).select(
                *bronze_cols, INGEST_DATE, F.col("_source_file").alias(SOURCE_FILE), *meta
            )
            bad = final.where(F.size("reasons") > 0).select(
                F.lit(source).alias("source"), INGEST_DATE, F.lit("row").alias("level"), "reasons", "raw",
                F.col("_source_file").alias(SOURCE_FILE), F.col("_line").alias("line_number"),
                F.lit(1).cast("bigint").alias("record_count"), *meta,
            )
        else:
            good = spark.createDataFrame([], bronze_schema(spec))
            bad = spark.createDataFrame([], QUARANTINE_DDL)
        for v in verdicts:  # file-level codes count files
            for code in sorted({reason.split(":", 1)[0] for reason in v.rejected + v.flags}):
                result.reasons[code] = result.reasons.get(code, 0) + 1
        quarantine_df = bad.unionByName(spark.createDataFrame(file_rows, QUARANTINE_DDL)).repartition(INGEST_DATE)

        # 4. Writes: each replaces exactly this chunk's dates. First the log says the dates are in progress (with
        # the new fingerprint), so between a crash after bronze and the rerun no reader takes bronze's new rows
        # next to the old quarantine and counts for a finished day; the final log row below finishes them.
        step("validate_count")
        started = [(source, d, IN_PROGRESS, hashes[d], config_hash, None, None, None, None, None, [], None, None,
                    run_id, ingested_at) for d in dates]
        _append_log(spark, lh, started)
        step("mark_in_progress")
        # replace_partitions gathers each date's rows first: few, well-sized files instead of one per task and date.
        bronze_version = with_conflict_retry(
            lambda: lh.replace_partitions(good, bronze(source), INGEST_DATE, dates), str(bronze(source))
        )
        step("write_bronze")
        quarantine_version = replace_where(
            lh, quarantine_df, QUARANTINE, _source_predicate(source, dates), ["source", INGEST_DATE]
        )
    finally:
        if final is not None:
            final.unpersist()
        if keep:
            content.unpersist()

    step("write_quarantine")
    log_rows = []
    for d in dates:
        day = [v for v in verdicts if date_of[v.path] == d]
        rejected_records = sum(v.records for v in day if v.rejected)
        r = DateResult(
            date=d.isoformat(),
            status="ingested",
            files=len(day),
            files_quarantined=sum(1 for v in day if v.rejected),
            good=counts[(d, True)],
            quarantined=counts[(d, False)] + rejected_records,
            read=counts[(d, True)] + counts[(d, False)] + rejected_records,
            flags=[f"{v.path.rsplit('/', 1)[-1]}: {x}" for v in day for x in v.flags],
        )
        result.dates[r.date] = r
        log_rows.append(
            (source, d, "ingested", hashes[d], config_hash, r.files, r.files_quarantined, r.read, r.good,
             r.quarantined, r.flags, bronze_version, quarantine_version, run_id, ingested_at)
        )
    _append_log(spark, lh, log_rows)
    result.bronze_version, result.quarantine_version = bronze_version, quarantine_version
    step("write_log")
    for name, seconds in steps.items():
        result.seconds[name] = round(result.seconds.get(name, 0.0) + seconds, 2)
    took = time.monotonic() - t0
    read = sum(result.dates[d.isoformat()].read for d in dates)
    log.info("%s %s..%s: %d files, %d records read, %d good, %d quarantined in %.1fs (%.0f records/s)",
             source, dates[0], dates[-1], len(files), read, sum(counts[(d, True)] for d in dates),
             read - sum(counts[(d, True)] for d in dates), took, read / took if took else 0)


def _append_log(spark: SparkSession, lh: Lakehouse, rows: list[tuple]) -> None:
    # Appended (a blind append never conflicts with the other sources' appends, and costs a third of an overwrite).
    # Saved without Lakehouse.append's read-back of the new version (two more queries of the Delta log): the log's
    # version is not reported anywhere.
    log_df = spark.createDataFrame(rows, INGEST_LOG_DDL).coalesce(1)
    writer = log_df.write.format("delta").mode("append").partitionBy("source")
    with_conflict_retry(lambda: lh._save(writer, INGEST_LOG), str(INGEST_LOG))


def _dedupe(
    spark: SparkSession, lh: Lakehouse, source: str, spec: SourceSpec, validated: DataFrame, dates: Sequence[date]
) -> DataFrame:
    """Quarantine all but the first occurrence of each primary key among otherwise-good rows."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    pk = spec.primary_key
    # A reference table's key landing again on a later date is the record's new version, not a duplicate.
    versioned = spec.event_time is None
    valid = F.size("reasons") == 0
    df = validated.withColumn("_valid", valid)
    order = [F.col(INGEST_DATE), F.col("_source_file"), F.col("_line")]
    w = Window.partitionBy(*pk, "_valid", *([INGEST_DATE] if versioned else [])).orderBy(*order)
    first = F.first(F.struct(INGEST_DATE, "_source_file", "_line")).over(w)
    df = df.withColumn("_rn", F.row_number().over(w)).withColumn("_first", first)
    key_text = F.concat_ws(", ", *[F.concat(F.lit(f"{k}="), F.col(f"`{k}`").cast("string")) for k in pk])

    table = bronze(source)
    prior_date = F.lit(None).cast("date")
    if not versioned and lh.exists(spark, table):
        # Keys already in bronze from dates outside this pass (reruns replace the pass's own dates).
        prior = (
            lh.read(spark, table)
            .where(~F.col(INGEST_DATE).isin(list(dates)) & (F.col(INGEST_DATE) < max(dates)))
            .groupBy(*pk)
            .agg(F.min(INGEST_DATE).alias("_prior_date"))
        )
        df = df.join(prior, on=pk, how="left")
        prior_date = F.when(F.col("_prior_date") < F.col(INGEST_DATE), F.col("_prior_date"))

    first_file = F.regexp_extract(F.col("_first._source_file"), r"[^/]*$", 0)
    dup_reason = (
        F.when(
            prior_date.isNotNull(),
            F.concat(F.lit("duplicate_key: "), key_text, F.lit(" already ingested on "), prior_date.cast("string")),
        )
        .when(
            (F.col("_rn") > 1) & (F.col("_first.ingest_date") == F.col(INGEST_DATE)),
            F.concat(F.lit("duplicate_key: "), key_text, F.lit(" first seen in "), first_file, F.lit(":"),
                     F.col("_first._line").cast("string")),
        )
        .when(
            F.col("_rn") > 1,
            F.concat(F.lit("duplicate_key: "), key_text, F.lit(" already ingested on "),
                     F.col("_first.ingest_date").cast("string")),
        )
    )
    reasons = F.when(F.col("_valid") & dup_reason.isNotNull(), F.array(dup_reason)).otherwise(F.col("reasons"))
    return df.withColumn("reasons", reasons)

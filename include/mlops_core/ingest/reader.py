"""Reading landing files: file-level checks, then one record per data line with the raw line kept.

0. `load_files`: the files' bytes as one binaryFile DataFrame (path, content). The pipeline persists it, so
   each landing file is fetched from storage once for both steps below (on S3: the listing, then Spark's
   per-file metadata requests and one GET), not once per step.
1. `inspect_files`: one Spark pass over those bytes computes per-file facts with SQL expressions (UTF-8
   validity, NUL bytes, magic bytes, first/last line, line count, final newline).
2. `check_file` (plain Python on those few facts) decides whether the whole file is rejected, and why.
3. `read_records`: the accepted files split into lines (posexplode keeps the line number), parsed with
   from_csv / from_json against an all-string schema (Spark's `_corrupt_record` marks malformed lines),
   or read as Parquet. The result has one row per record: file, line, raw text, raw field values.

Text records are one per line: a CSV field with an embedded newline is split and lands in quarantine
as malformed lines (visible, never silently merged)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlops_core.ingest.landing import LandingFile
from mlops_core.ingest.spec import SourceSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

CORRUPT = "_corrupt_record"
# Extensions that certainly are not the source's format.
FORMAT_EXTENSIONS = {
    "csv": {".csv", ".tsv", ".txt"},
    "json": {".json", ".jsonl", ".ndjson", ".txt"},
    "parquet": {".parquet", ".pq"},
}
KNOWN_EXTENSIONS = {
    ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".parquet", ".pq", ".avro", ".orc", ".xlsx", ".xls",
    ".zip", ".gz", ".bz2", ".xz", ".zst", ".snappy",
}
MAGIC = {"50415231": "parquet", "1F8B": "gzip", "504B0304": "zip", "4F626A01": "avro", "4F524331": "orc"}
# CSV reader options that make no sense for from_csv on a single line.
_LINE_PARSER_SKIP = {"header", "inferschema", "enforceschema", "encoding", "charset", "multiline", "mode",
                     "columnnameofcorruptrecord", "samplingratio", "pathglobfilter", "recursivefilelookup"}


@dataclass
class FileFacts:
    path: str
    size: int
    valid_utf8: bool = True
    has_nul: bool = False
    head_hex: str = ""
    tail_hex: str = ""
    first_line: str = ""
    last_line: str = ""  # text after the last newline ("" when the file ends with one)
    ends_with_newline: bool = True
    nonblank_lines: int = 0


@dataclass
class FileVerdict:
    path: str
    rejected: list[str] = field(default_factory=list)  # file-level reasons: the whole file is quarantined
    flags: list[str] = field(default_factory=list)  # visible warnings; the file is still loaded
    header: list[str] | None = None  # CSV: the columns as the file names them
    records: int = 0  # data records the file holds (text: non-blank lines minus header; binary: 0)

    @property
    def accepted(self) -> bool:
        return not self.rejected


# ---- paths ------------------------------------------------------------------------------------------
def spark_path(path: str) -> str:
    """The path as Spark reads it: s3:// becomes s3a:// outside Databricks."""
    from mlops_core.spark import on_databricks

    if path.startswith("s3://") and not on_databricks():
        return "s3a://" + path[len("s3://") :]
    return path


def normalize_path(path: str) -> str:
    """Compare Spark's `file:/x` / `s3a://` paths with the listed ones."""
    if path.startswith("file:"):
        path = path[len("file:") :]
        while path.startswith("//"):
            path = path[1:]
    if path.startswith("s3a://"):
        path = "s3://" + path[len("s3a://") :]
    return path


def _path_column(col: str = "path"):
    from pyspark.sql import functions as F

    p = F.regexp_replace(F.col(col), r"^file:/+", "/")
    return F.regexp_replace(p, r"^s3a://", "s3://")


# ---- step 0: the files' bytes ------------------------------------------------------------------------
def load_files(spark: SparkSession, paths: Iterable[str]) -> DataFrame | None:
    """The files as (path as listed, content); None for no path. Give only non-empty files: binaryFile skips
    empty ones. Lazy: persist it to have both `inspect_files` and `read_records` fetch each file once."""
    paths = list(paths)
    if not paths:
        return None
    df = spark.read.format("binaryFile").load([spark_path(p) for p in paths])
    return df.select(_path_column().alias("path"), "content")


# ---- step 1: file facts -----------------------------------------------------------------------------
def inspect_files(spark: SparkSession, files: Iterable[LandingFile],
                  content: DataFrame | None = None) -> dict[str, FileFacts]:
    """Facts of every file, keyed by its listed path, from `content` (`load_files` of these files; loaded
    here when not given). Empty files never reach Spark (binaryFile skips them)."""
    from pyspark.sql import functions as F

    files = list(files)
    facts = {f.path: FileFacts(path=f.path, size=f.size) for f in files}
    if content is None:
        content = load_files(spark, [f.path for f in files if f.size > 0])
    if content is None:
        return facts
    text = F.col("content").cast("string")
    lines = F.split(text, "\n")
    rows = content.select(
        "path",
        F.is_valid_utf8(text).alias("valid_utf8"),
        (F.instr(text, "\u0000") > 0).alias("has_nul"),
        F.hex(F.substring("content", 1, 4)).alias("head_hex"),
        F.hex(F.substring("content", -4, 4)).alias("tail_hex"),
        F.substring(F.substring_index(text, "\n", 1), 1, 4000).alias("first_line"),
        F.substring(F.substring_index(text, "\n", -1), 1, 100000).alias("last_line"),
        text.endswith("\n").alias("ends_with_newline"),
        F.size(F.filter(lines, lambda x: F.trim(x) != "")).alias("nonblank_lines"),
    ).collect()
    for r in rows:
        fact = facts.get(normalize_path(r["path"]))
        if fact is None:  # pragma: no cover - Spark and the listing disagree on a path
            raise RuntimeError(f"Spark read a file that was not listed: {r['path']}")
        fact.valid_utf8 = bool(r["valid_utf8"])
        fact.has_nul = bool(r["has_nul"])
        fact.head_hex = r["head_hex"] or ""
        fact.tail_hex = r["tail_hex"] or ""
        fact.first_line = _clean_line(r["first_line"] or "")
        fact.last_line = (r["last_line"] or "").rstrip("\r")
        fact.ends_with_newline = bool(r["ends_with_newline"])
        fact.nonblank_lines = int(r["nonblank_lines"] or 0)
    return facts


def _clean_line(line: str) -> str:
    return line.rstrip("\r").lstrip("\ufeff")


def _extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    return name[name.rfind(".") :] if "." in name else ""


def _binary_kind(f: FileFacts) -> str | None:
    for magic, kind in MAGIC.items():
        if f.head_hex.upper().startswith(magic):
            return kind
    return "binary" if f.has_nul else None


def _parse_csv_line(line: str, spec: SourceSpec, strict: bool = False) -> list[str] | None:
    quote = spec.options.get("quote", '"') or '"'
    try:
        rows = list(csv.reader([line], delimiter=spec.delimiter, quotechar=quote, strict=strict))
    except csv.Error:
        return None
    return [c.strip() for c in rows[0]] if rows else []


# ---- step 2: file verdicts --------------------------------------------------------------------------
def check_file(f: FileFacts, spec: SourceSpec) -> FileVerdict:
    """Decide at file level. Rules (docs/ingest.md): empty, wrong format, not UTF-8, truncated, missing /
    duplicate / unexpected columns reject the whole file; with on_extra_columns=flag extra columns only flag."""
    v = FileVerdict(path=f.path)
    fmt = spec.format
    ext = _extension(f.path)
    if f.size == 0:
        v.rejected.append("empty_file: 0 bytes")
        return v
    if fmt == "parquet":
        if not f.head_hex.upper().startswith("50415231"):
            kind = _binary_kind(f) or "text"
            v.rejected.append(f"wrong_format: {kind} content, not parquet (no PAR1 magic bytes)")
        elif not f.tail_hex.upper().endswith("50415231"):
            v.rejected.append("truncated_file: parquet footer missing (file cut short)")
        return v

    text_like = _binary_kind(f) is None
    # Records of a text file: its non-blank lines, less the CSV header when the first line looks like one.
    v.records = f.nonblank_lines if text_like else 0
    if text_like and fmt == "csv" and spec.has_header and _looks_like_header(f.first_line, spec):
        v.records = max(v.records - 1, 0)
    if not text_like:
        v.rejected.append(f"wrong_format: {_binary_kind(f)} content in a {fmt} source")
        return v
    if ext in KNOWN_EXTENSIONS and ext not in FORMAT_EXTENSIONS[fmt]:
        v.rejected.append(f"wrong_format: a {ext} file in a {fmt} source")
        return v
    if not f.valid_utf8:
        v.rejected.append("not_utf8: the file is not valid UTF-8 (re-export it as UTF-8)")
        return v
    if f.nonblank_lines == 0:
        v.rejected.append(f"empty_file: {f.size} bytes of blank lines")
        return v
    if fmt == "json":
        if not f.first_line.lstrip().startswith("{"):
            v.rejected.append(f"wrong_format: first line is not a JSON object: {f.first_line[:80]!r}")
        elif not f.ends_with_newline and f.last_line.strip() and not _is_json(f.last_line):
            v.rejected.append("truncated_file: the last line is an incomplete JSON record and has no newline")
        return v
    return _check_csv(f, spec, v)


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _looks_like_header(line: str, spec: SourceSpec) -> bool:
    return bool(set(_parse_csv_line(line, spec) or []) & set(spec.column_names))


def _check_csv(f: FileFacts, spec: SourceSpec, v: FileVerdict) -> FileVerdict:
    contract = spec.column_names
    if f.first_line.lstrip().startswith(("{", "[")):
        v.rejected.append("wrong_format: the file holds JSON, not csv")
        return v
    if spec.has_header:
        header = _parse_csv_line(f.first_line, spec) or []
        v.header = header
        if not set(header) & set(contract):
            v.rejected.append(
                f"wrong_format: the header shares no column with the contract (first line {f.first_line[:80]!r})"
            )
            return v
        dupes = sorted({c for c in header if header.count(c) > 1})
        if dupes:
            v.rejected.append(f"duplicate_columns: {', '.join(dupes)}")
        missing = [c for c in contract if c not in header]
        if missing:
            v.rejected.append(f"missing_columns: {', '.join(missing)}")
        extra = [c for c in header if c not in contract]
        if extra:
            text = f"unexpected_columns: {', '.join(extra)}"
            if spec.on_extra_columns == "quarantine":
                v.rejected.append(f"{text} (not in the contract; set on_extra_columns: flag to load the rest)")
            else:
                v.flags.append(f"{text} (not in the contract; not loaded, the file's rows were)")
    width = len(v.header) if v.header is not None else len(contract)
    if not f.ends_with_newline and f.last_line.strip():
        fields = _parse_csv_line(f.last_line, spec, strict=True)
        if fields is None or len(fields) < width:
            v.rejected.append("truncated_file: the last line is an incomplete record and has no newline")
    return v


# ---- step 3: records --------------------------------------------------------------------------------
def _ddl(names: Iterable[str]) -> str:
    return ", ".join("`" + n.replace("`", "``") + "` STRING" for n in names)


def _lines(paths: list[str], header: bool, content: DataFrame) -> DataFrame:
    """One row per non-blank data line of the files `paths`: _source_file, _line (1-based), raw, split from
    `content` (`load_files` of at least these files)."""
    from pyspark.sql import functions as F

    text = F.col("content").cast("string")
    df = content.where(F.col("path").isin(paths))
    df = df.select(F.col("path").alias("_source_file"), F.posexplode(F.split(text, "\n")).alias("_pos", "raw"))
    raw = F.regexp_replace(F.col("raw"), "\r$", "")
    raw = F.when(F.col("_pos") == 0, F.regexp_replace(raw, "^\ufeff", "")).otherwise(raw)
    df = df.select("_source_file", (F.col("_pos") + 1).cast("int").alias("_line"), raw.alias("raw"))
    df = df.where(F.trim("raw") != "")
    if header:
        df = df.where(F.col("_line") != 1)
    return df


def read_records(spark: SparkSession, spec: SourceSpec, verdicts: list[FileVerdict],
                 content: DataFrame | None = None) -> DataFrame | None:
    """Records of the accepted files: _source_file, _line, raw, _raw (struct of contract columns as strings),
    _parse_error, _extra_fields (and _typed for Parquet). None when no file was accepted. Text formats split
    `content` (`load_files` of the files, as `inspect_files` used it) when given."""
    accepted = [v for v in verdicts if v.accepted]
    if not accepted:
        return None
    if content is None and spec.format != "parquet":
        content = load_files(spark, [v.path for v in accepted])  # accepted files are never empty
    if spec.format == "csv":
        return _csv_records(spark, spec, accepted, content)
    if spec.format == "json":
        return _json_records(spark, spec, accepted, content)
    return _parquet_records(spark, spec, accepted)


def _csv_records(
    spark: SparkSession, spec: SourceSpec, accepted: list[FileVerdict], content: DataFrame
) -> DataFrame:
    from pyspark.sql import functions as F

    options = {k: v for k, v in spec.options.items() if k.lower() not in _LINE_PARSER_SKIP}
    options.update({"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    # Files with the same header share one parser; a reordered or extended header gets its own.
    groups: dict[tuple[str, ...], list[str]] = {}
    for v in accepted:
        groups.setdefault(tuple(v.header or spec.column_names), []).append(v.path)
    parts = []
    for header, paths in sorted(groups.items()):
        lines = _lines(paths, header=spec.has_header, content=content)
        parsed = F.from_csv("raw", _ddl([*header, CORRUPT]), options).alias("_p")
        width = len(header)
        parts.append(
            lines.select("*", parsed).select(
                "_source_file",
                "_line",
                "raw",
                F.struct(*[F.col(f"_p.`{c}`").alias(c) for c in spec.column_names]).alias("_raw"),
                F.when(
                    F.col(f"_p.{CORRUPT}").isNotNull() | F.col("_p").isNull(),
                    F.lit(f"malformed_record: not {width} fields as in the header, or broken quoting"),
                ).alias("_parse_error"),
                F.lit(None).cast("array<string>").alias("_extra_fields"),
            )
        )
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def _json_records(
    spark: SparkSession, spec: SourceSpec, accepted: list[FileVerdict], content: DataFrame
) -> DataFrame:
    from pyspark.sql import functions as F

    lines = _lines([v.path for v in accepted], header=False, content=content)
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
    parsed = F.from_json("raw", _ddl([*spec.column_names, CORRUPT]), options).alias("_p")
    keys = F.json_object_keys("raw")
    contract = F.array(*[F.lit(c) for c in spec.column_names])
    return lines.select("*", parsed, keys.alias("_keys")).select(
        "_source_file",
        "_line",
        "raw",
        F.struct(*[F.col(f"_p.`{c}`").alias(c) for c in spec.column_names]).alias("_raw"),
        F.when(
            F.col(f"_p.{CORRUPT}").isNotNull() | F.col("_keys").isNull(),
            F.lit("malformed_record: not a valid JSON object"),
        ).alias("_parse_error"),
        F.array_except(F.col("_keys"), contract).alias("_extra_fields"),
    )


def parquet_schema_checks(spark: SparkSession, spec: SourceSpec, verdicts: list[FileVerdict]) -> None:
    """Parquet: read each accepted file's schema (its footer); unreadable / missing / extra columns reject."""
    contract = spec.column_names
    for v in verdicts:
        if not v.accepted:
            continue
        try:
            names = spark.read.parquet(spark_path(v.path)).columns
        except Exception as exc:  # noqa: BLE001 - any read failure means the file is corrupt
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            v.rejected.append(f"corrupt_file: Spark cannot read it as parquet ({first})")
            continue
        v.header = names
        missing = [c for c in contract if c not in names]
        if missing:
            v.rejected.append(f"missing_columns: {', '.join(missing)}")
        extra = [c for c in names if c not in contract]
        if extra:
            text = f"unexpected_columns: {', '.join(extra)}"
            if spec.on_extra_columns == "quarantine":
                v.rejected.append(f"{text} (not in the contract; set on_extra_columns: flag to load the rest)")
            else:
                v.flags.append(f"{text} (not in the contract; not loaded, the file's rows were)")


def _parquet_records(spark: SparkSession, spec: SourceSpec, accepted: list[FileVerdict]) -> DataFrame:
    from pyspark.sql import functions as F

    parts = []
    for v in accepted:
        df = spark.read.parquet(spark_path(v.path))
        parts.append(
            df.select(
                _path_column("_metadata.file_path").alias("_source_file"),
                (F.col("_metadata.row_index") + 1).cast("int").alias("_line"),
                F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns])).alias("raw"),
                F.struct(*[F.col(f"`{c.name}`").cast("string").alias(c.name) for c in spec.columns]).alias("_raw"),
                F.struct(*[F.col(f"`{c.name}`").try_cast(c.type).alias(c.name) for c in spec.columns]).alias(
                    "_typed"
                ),
                F.lit(None).cast("string").alias("_parse_error"),
                F.lit(None).cast("array<string>").alias("_extra_fields"),
            )
        )
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out

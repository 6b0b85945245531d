"""The online feature store: each entity's newest snapshot, looked up by key without Spark.

One SQLite file per use case, <data dir>/online/<use case>/<entity>_features.sqlite, written by the features job
from features.<entity>_features_latest (`refresh_online_store`) and read by the serving process (`OnlineStore`).

Why SQLite, and why not in WAL mode. The store is rebuilt as a whole after each features run (the latest table is
rewritten as a whole too) and nobody ever writes to it in place: the writer builds a NEW file next to the live
one (a WITHOUT ROWID table clustered on the key, so a lookup is one B-tree descent) and renames it over the live
one, which is atomic on POSIX. Readers open the file read-only with `immutable=1` (no locks, no journal, no change
checks: a lookup is a few microseconds), notice the rename by the file's inode (checked at most once a second)
and reopen; a lookup in flight finishes on the file it opened. WAL would buy concurrent in-place writes, which
this store never does, and its `-shm`/`-wal` sidecars are named after the path, so an old and a new file would
share them across the rename. No server, no extra dependency, and the file can be inspected with `sqlite3`.

The file also holds a `meta` table: as-of date (newest and oldest snapshot date), row count, source table and its
Delta version, refresh time, the column types."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_core.features.spec import AS_OF_DATE

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from mlops_core.config.environment import EnvironmentConfig
    from mlops_core.config.use_case import UseCaseConfig
    from mlops_core.lakehouse import Lakehouse

log = logging.getLogger("mlops.serving.store")

TABLE = "features"
META = "meta"
_INSERT_BATCH = 5000


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def online_store_root(env: EnvironmentConfig) -> Path:
    """<lakehouse_root>/../online for a lakehouse on local disk (.local/online by default); for a lakehouse on
    object storage, the local data dir ($MLOPS_DATA_DIR, default .local) of the machine that runs the job."""
    from mlops_core.config.environment import resolve_location

    root = env.storage.lakehouse_root
    if "://" not in root and not root.startswith("dbfs:/"):
        return Path(root).parent / "online"
    return Path(resolve_location(os.environ.get("MLOPS_DATA_DIR") or ".local")) / "online"


def online_store_path(env: EnvironmentConfig, use_case: UseCaseConfig) -> Path:
    return online_store_root(env) / use_case.name / f"{use_case.entity.name}_features.sqlite"


# ---- writing (the features job) -------------------------------------------------------------------------
def _sqlite_type(arrow_type) -> tuple[str, str]:
    """(SQLite column type, the logical type recorded in meta) of an Arrow column."""
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return "INTEGER", "boolean"
    if pa.types.is_integer(arrow_type):
        return "INTEGER", "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "REAL", "double"
    if pa.types.is_date(arrow_type):
        return "TEXT", "date"
    if pa.types.is_timestamp(arrow_type):
        return "TEXT", "timestamp"
    return "TEXT", "string"


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float)):
        return int(value) if isinstance(value, bool) else value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


# The store's key column for a composite entity key (its columns stay in the store as well).
STORE_KEY = "entity_key"


def write_store(path: Path, key: str, arrow_table, meta: dict[str, Any]) -> dict[str, Any]:
    """Write `arrow_table` (one row per key) as the store file at `path`, atomically: a new file, then a rename."""
    columns = [c for c in arrow_table.column_names if not c.startswith("_")]
    if key not in columns:
        raise ValueError(f"the latest-features table has no key column {key!r}")
    table = arrow_table.select(columns)
    types = {c: _sqlite_type(table.schema.field(c).type) for c in columns}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            cols_sql = ", ".join(f"{_quote(c)} {types[c][0]}" + (" PRIMARY KEY NOT NULL" if c == key else "")
                                 for c in columns)
            conn.execute(f"CREATE TABLE {TABLE} ({cols_sql}) WITHOUT ROWID")
            insert = (f"INSERT OR REPLACE INTO {TABLE} VALUES ({', '.join('?' * len(columns))})")
            key_index = columns.index(key)
            for batch in table.to_batches(max_chunksize=_INSERT_BATCH):
                data = [[_plain(v) for v in batch.column(i).to_pylist()] for i in range(len(columns))]
                data[key_index] = [None if v is None else str(v) for v in data[key_index]]
                conn.executemany(insert, (row for row in zip(*data, strict=True) if row[key_index] is not None))
            rows = conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]
            as_of = min_as_of = None
            if AS_OF_DATE in columns:
                min_as_of, as_of = conn.execute(
                    f"SELECT MIN({_quote(AS_OF_DATE)}), MAX({_quote(AS_OF_DATE)}) FROM {TABLE}").fetchone()
            info = {**meta, "key": key, "rows": rows, "as_of_date": as_of, "min_as_of_date": min_as_of,
                    "refreshed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "columns": {c: t[1] for c, t in types.items()}}
            conn.execute(f"CREATE TABLE {META} (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID")
            conn.executemany(f"INSERT INTO {META} VALUES (?, ?)", [(k, json.dumps(v)) for k, v in info.items()])
            conn.commit()
        finally:
            conn.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {**{k: v for k, v in info.items() if k != "columns"}, "path": str(path)}


def refresh_online_store(spark: SparkSession, lakehouse: Lakehouse, use_case_cfg: UseCaseConfig,
                         env: EnvironmentConfig) -> dict[str, Any]:
    """Rewrite the use case's online store from features.<entity>_features_latest (pinned at its current Delta
    version). Returns the store's rows, as-of date, source version and path, or {"skipped": why}."""
    from mlops_core import tables

    if env.storage.catalog:
        return {"skipped": "Unity Catalog environment: serve features from a Databricks online table instead"}
    table = tables.latest_features(use_case_cfg.entity.name)
    version = lakehouse.version(spark, table)
    if version is None:
        return {"skipped": f"{lakehouse.identifier(table)} does not exist yet"}
    started = time.perf_counter()
    entity = use_case_cfg.entity
    latest = lakehouse.read(spark, table, version=version)
    key = entity.keys[0]
    if entity.composite:  # one text column keys the store: the values joined as a request's key is ('JFK|LAX')
        key = STORE_KEY
        latest = latest.withColumn(key, entity.key_text_column())
    arrow = latest.toArrow()
    path = online_store_path(env, use_case_cfg)
    out = write_store(path, key, arrow,
                      {"use_case": use_case_cfg.name, "entity": use_case_cfg.entity.name,
                       "source_table": lakehouse.identifier(table), "source_version": version})
    out["seconds"] = round(time.perf_counter() - started, 3)
    log.info("online store %s: %s rows as of %s (source version %s)", path, out["rows"], out["as_of_date"], version)
    return out


# ---- reading (the serving process) ----------------------------------------------------------------------
class StoreUnavailable(RuntimeError):
    """The store file does not exist or cannot be read."""


class OnlineStore:
    """Key lookups in the store file at `path`; follows the file when the features job replaces it."""

    CHECK_SECONDS = 1.0

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        self._generation = 0
        self._checked = 0.0
        self.meta: dict[str, Any] = {}

    def _check(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.CHECK_SECONDS and self._identity is not None:
            return
        with self._lock:
            self._checked = now
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self._identity, self.meta = None, {}
                return
            identity = (st.st_ino, st.st_mtime_ns)
            if identity != self._identity:
                conn = self._open()
                try:
                    meta = {k: json.loads(v) for k, v in conn.execute(f"SELECT k, v FROM {META}")}
                finally:
                    conn.close()
                self.meta, self._identity = meta, identity
                self._generation += 1
                log.info("online store %s: %s rows as of %s", self.path, meta.get("rows"), meta.get("as_of_date"))

    def _open(self) -> sqlite3.Connection:
        return sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                               check_same_thread=False)

    def _conn(self) -> sqlite3.Connection:
        self._check()
        if self._identity is None:
            raise StoreUnavailable(f"online store {self.path} does not exist: run the features job "
                                   "(materialize_features) first")
        local = self._local
        if getattr(local, "generation", None) != self._generation:
            if getattr(local, "conn", None) is not None:
                local.conn.close()
            local.conn, local.generation = self._open(), self._generation
        return local.conn

    @property
    def available(self) -> bool:
        self._check()
        return self._identity is not None

    def describe(self) -> dict[str, Any]:
        self._check()
        info = {k: v for k, v in self.meta.items() if k != "columns"}
        return {"path": str(self.path), "available": self._identity is not None, **info}

    @property
    def columns(self) -> dict[str, str]:
        self._check()
        return dict(self.meta.get("columns") or {})

    def lookup(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """{key: its row} for the keys the store has (absent keys are left out)."""
        conn = self._conn()
        key = self.meta["key"]
        bools = [c for c, t in (self.meta.get("columns") or {}).items() if t == "boolean"]
        out: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            where = f"{_quote(key)} = ?" if len(chunk) == 1 else f"{_quote(key)} IN ({', '.join('?' * len(chunk))})"
            cur = conn.execute(f"SELECT * FROM {TABLE} WHERE {where}", chunk)
            names = [d[0] for d in cur.description]
            for values in cur:
                row = dict(zip(names, values, strict=True))
                for c in bools:
                    if row.get(c) is not None:
                        row[c] = bool(row[c])
                out[row[key]] = row
        return out

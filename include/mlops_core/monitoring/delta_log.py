"""Read a small path-based Delta table without Spark: the transaction log (checkpoint + JSON commits) gives
the live data files, pyarrow reads them. For the triggerer, which must not start a JVM.

Supports what the project's own small tables use: classic (single or multi-part) Parquet checkpoints, JSON
commits, partition values, local paths and s3:// (pyarrow's S3 filesystem; AWS_ENDPOINT_URL is honoured).
Tables with deletion vectors or column mapping are refused with a clear error rather than read wrongly."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.\d{10}\.\d{10})?\.parquet$")
_V2_CHECKPOINT = re.compile(r"^\d{20}\.checkpoint\.[0-9a-fA-F-]{36}\.(?:json|parquet)$")


class DeltaReadError(RuntimeError):
    """The table cannot be read by this reader (missing, or uses a feature it does not support)."""


def _filesystem(path: str):
    from pyarrow import fs

    if path.startswith("s3://") or path.startswith("s3a://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        kwargs: dict[str, Any] = {}
        if endpoint:
            kwargs["endpoint_override"] = endpoint
            kwargs["scheme"] = "https" if endpoint.startswith("https") else "http"
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            kwargs["region"] = region
        return fs.S3FileSystem(**kwargs), path.split("://", 1)[1].rstrip("/")
    if path.startswith("file://"):
        path = path[len("file://"):]
    return fs.LocalFileSystem(), path.rstrip("/")


def _list(filesystem, folder: str) -> list[str]:
    from pyarrow import fs

    try:
        infos = filesystem.get_file_info(fs.FileSelector(folder, allow_not_found=True))
    except FileNotFoundError:
        return []
    return [i.base_name for i in infos if i.type == fs.FileType.File]


def _read_text(filesystem, path: str) -> str:
    with filesystem.open_input_stream(path) as fh:
        return fh.read().decode("utf-8")


def is_delta_table(path: str) -> bool:
    filesystem, root = _filesystem(path)
    return any(_COMMIT.match(n) or _CHECKPOINT.match(n) for n in _list(filesystem, f"{root}/_delta_log"))


def live_files(path: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The `add` actions of the table's current version (path, partitionValues, ...) and its metaData."""
    from urllib.parse import unquote

    import pyarrow.parquet as pq

    filesystem, root = _filesystem(path)
    log_dir = f"{root}/_delta_log"
    names = _list(filesystem, log_dir)
    commits = sorted((int(m.group(1)), n) for n in names if (m := _COMMIT.match(n)))
    checkpoints: dict[int, list[str]] = {}
    for n in names:
        if m := _CHECKPOINT.match(n):
            checkpoints.setdefault(int(m.group(1)), []).append(n)
    if not commits and not checkpoints:
        raise DeltaReadError(f"{path} is not a Delta table (no _delta_log)")
    if any(_V2_CHECKPOINT.match(n) for n in names):
        # v2 checkpoints (uuid-named) are only written when the table enables them; fail loudly if so.
        raise DeltaReadError(f"{path}: v2 checkpoints are not supported by this reader")

    adds: dict[str, dict[str, Any]] = {}
    meta: dict[str, Any] = {}
    start = -1
    if checkpoints:
        version = max(checkpoints)
        for part in sorted(checkpoints[version]):
            with filesystem.open_input_file(f"{log_dir}/{part}") as fh:
                table = pq.read_table(fh, columns=["add", "metaData"])
            for row in table.to_pylist():
                if row.get("add"):
                    add = dict(row["add"])
                    # Parquet maps come back from pyarrow as lists of (key, value) pairs.
                    if isinstance(add.get("partitionValues"), list):
                        add["partitionValues"] = dict(add["partitionValues"])
                    adds[unquote(add["path"])] = add
                if row.get("metaData"):
                    meta = row["metaData"]
        start = version

    for version, name in commits:
        if version <= start:
            continue
        for line in _read_text(filesystem, f"{log_dir}/{name}").splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "add" in action:
                adds[unquote(action["add"]["path"])] = action["add"]
            elif "remove" in action:
                adds.pop(unquote(action["remove"]["path"]), None)
            elif "metaData" in action:
                meta = action["metaData"]
    for add in adds.values():
        if add.get("deletionVector"):
            raise DeltaReadError(f"{path}: deletion vectors are not supported by this reader")
    config = (meta or {}).get("configuration") or {}
    if config.get("delta.columnMapping.mode", "none") != "none":
        raise DeltaReadError(f"{path}: column mapping is not supported by this reader")
    return list(adds.values()), meta


def read_rows(
    path: str,
    *,
    partition_filter: Callable[[dict[str, str | None]], bool] | None = None,
    latest_partitions: tuple[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Rows of the table's current version as dicts. `partition_filter(partitionValues)` keeps files;
    `latest_partitions=(column, n)` keeps only the files of the n greatest values of a partition column."""
    from urllib.parse import unquote

    import pyarrow.parquet as pq

    if not is_delta_table(path):
        return []
    filesystem, root = _filesystem(path)
    files, _meta = live_files(path)
    if partition_filter is not None:
        files = [f for f in files if partition_filter(f.get("partitionValues") or {})]
    if latest_partitions is not None:
        column, count = latest_partitions
        values = sorted({(f.get("partitionValues") or {}).get(column) for f in files} - {None}, reverse=True)
        keep = set(values[:count])
        files = [f for f in files if (f.get("partitionValues") or {}).get(column) in keep]
    rows: list[dict[str, Any]] = []
    for f in files:
        rel = f["path"]
        full = unquote(rel) if "://" in rel else f"{root}/{unquote(rel)}"
        if "://" in full:
            filesystem_f, full = _filesystem(full)
        else:
            filesystem_f = filesystem
        with filesystem_f.open_input_file(full) as fh:
            table = pq.read_table(fh)
        partition = f.get("partitionValues") or {}
        for row in table.to_pylist():
            for k, v in partition.items():
                row.setdefault(k, v)
            rows.append(row)
    return rows

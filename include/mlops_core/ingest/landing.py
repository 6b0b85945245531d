"""The landing zone: where a source's files for one logical date live, and which files are there.

Layout: <storage.landing_root>/<source path with {date} = YYYY-MM-DD>/<files>, e.g.
.local/landing/orders/2026-01-05/part-0.csv. A local path or s3://bucket/prefix.

Files whose name starts with `.` or `_` are ignored (Spark's convention): a producer writes
`_part-0.csv.tmp` or `.part-0.csv` and renames it when complete, so a half-written file is never read.

Pure Python (os, and boto3 only for s3://): the Airflow sensor/trigger and the Spark job share it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date

from mlops_core.ingest.spec import SourceSpec


@dataclass(frozen=True, order=True)
class LandingFile:
    path: str  # absolute local path or s3://bucket/key
    size: int  # bytes
    modified: float  # epoch seconds

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def is_data_file(name: str) -> bool:
    """Hidden and in-progress files (`.x`, `_x`, e.g. `_SUCCESS`, `.part-0.csv.crc`) are not data."""
    return bool(name) and not name.startswith((".", "_"))


def source_folder(landing_root: str, spec: SourceSpec, day: date | str) -> str:
    return spec.folder(landing_root, day)


def _split_s3(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.rstrip("/") + "/" if prefix else ""


def list_files(folder: str) -> list[LandingFile]:
    """The data files directly inside `folder` (not recursive), sorted by path. A missing folder is empty."""
    return list_folders([folder])[folder]


def list_folders(folders: Iterable[str]) -> dict[str, list[LandingFile]]:
    """`list_files` of each folder: a backfill's date folders on S3 share one client (creating a boto3 client
    costs more than one LIST request: 90 dates took seconds of client set-up alone)."""
    folders = list(dict.fromkeys(folders))
    client = None
    out = {}
    for folder in folders:
        if folder.startswith(("s3://", "s3a://")):
            if client is None:
                import boto3  # only needed for an s3:// landing zone

                client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or None)
            out[folder] = _list_s3(client, folder)
        else:
            out[folder] = _list_local(folder)
    return out


def _list_local(folder: str) -> list[LandingFile]:
    if folder.startswith("file:"):
        folder = folder[len("file:") :]
        while folder.startswith("//"):
            folder = folder[1:]
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    files = []
    for entry in entries:
        if entry.is_file() and is_data_file(entry.name):
            st = entry.stat()
            files.append(LandingFile(os.path.abspath(entry.path), st.st_size, st.st_mtime))
    return sorted(files)


def _list_s3(client, folder: str) -> list[LandingFile]:
    scheme = folder.split("://", 1)[0]
    bucket, prefix = _split_s3(folder)
    files = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(prefix) :]
            if "/" not in name and is_data_file(name):
                files.append(
                    LandingFile(f"{scheme}://{bucket}/{obj['Key']}", int(obj["Size"]), obj["LastModified"].timestamp())
                )
    return sorted(files)


def missing_folders(folders: Iterable[str]) -> list[str]:
    """The folders that hold no data file yet."""
    folders = list(folders)
    listing = list_folders(folders)
    return [f for f in folders if not listing[f]]


def manifest_hash(files: Iterable[LandingFile], extra: str = "") -> str:
    """Fingerprint of a day's files (path, size, modification time) and `extra` (e.g. the config hash):
    an unchanged fingerprint means a rerun would read exactly the same input."""
    payload = json.dumps([asdict(f) for f in sorted(files)], sort_keys=True) + "|" + extra
    return hashlib.sha256(payload.encode()).hexdigest()[:16]

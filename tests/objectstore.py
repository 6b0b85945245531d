"""A local S3-compatible server (moto) on 127.0.0.1 and the object helpers the S3 and deployment tests share."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.net import free_port, serve

MOTO_SERVER = Path(sys.executable).with_name("moto_server")


@contextmanager
def moto_server(log_file: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`moto_server -H 127.0.0.1 -p <free port>` for the block; yields its endpoint URL."""
    port = free_port()
    with serve([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], port, log_file, env=env):
        yield f"http://127.0.0.1:{port}"


def keys(s3, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under the prefix."""
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


def upload_folder(s3, folder: Path, bucket: str, prefix: str) -> int:
    """Upload every file under `folder` to s3://bucket/prefix/<relative path>; return the number of files."""
    n = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix.strip('/')}/{path.relative_to(folder).as_posix()}")
            n += 1
    return n

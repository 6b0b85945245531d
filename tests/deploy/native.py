"""The Docker Compose topology without Docker: a PostgreSQL cluster from the distribution's packages, the compose
services' environments translated to 127.0.0.1, and a reader of Delta tables on S3 that needs no Spark.

PostgreSQL refuses to run as root; as root, the cluster is initialised and run as the `postgres` system user that
the distribution's package creates, in a private temporary folder handed to that user."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.deploy._support import read_env_file
from tests.net import free_port, serve

SERVICE_HOSTS = ("postgres:5432", "airflow-api-server:8080", "mlflow:5000", "minio:9000", "serving:8090")


def postgres_bin_dir() -> Path | None:
    """The folder of initdb/postgres: on PATH, or the newest /usr/lib/postgresql/<major>/bin (Debian)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return candidates[-1].parent if candidates else None


@dataclass
class PostgresCluster:
    host: str
    port: int
    superuser: str
    superuser_password: str

    def query(self, database: str, sql: str, params: tuple = (), *, user: str | None = None,
              password: str | None = None) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, dbname=database, user=user or self.superuser,
                                password=password or self.superuser_password)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()


@contextmanager
def postgres_cluster(superuser_password: str, log_file: Path) -> Iterator[PostgresCluster]:
    """initdb + postgres on 127.0.0.1:<free port> (password auth over TCP, as the postgres image does), for the
    block; stopped by its pid (fast shutdown) and its folder removed."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, postgres) not found: apt-get install postgresql")
    user = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    try:
        data = folder / "data"
        pwfile = folder / "superuser-password"
        pwfile.write_text(superuser_password)
        if user:
            shutil.chown(folder, user)
            shutil.chown(pwfile, user)
        init = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}", "-E", "UTF8",
             "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"],
            user=user, capture_output=True, text=True,
        )
        pwfile.unlink()
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
        port = free_port()
        cmd = [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(folder),
               # a throwaway cluster: durability off for speed
               "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with serve(cmd, port, log_file, user=user, stop_signal=signal.SIGINT):
            yield PostgresCluster("127.0.0.1", port, "postgres", superuser_password)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def generated_dotenv(overrides: Mapping[str, str]) -> dict[str, str]:
    """docker/.env as a user fills it in: every change-me placeholder of .env.example replaced by a generated
    value of the kind its comment asks for, then `overrides`."""
    values = read_env_file()
    for key, value in values.items():
        if "change-me" not in value:
            continue
        if key == "AIRFLOW_FERNET_KEY":
            values[key] = base64.urlsafe_b64encode(os.urandom(32)).decode()
        elif key == "AIRFLOW_JWT_SECRET":
            values[key] = secrets.token_urlsafe(64)
        else:
            values[key] = secrets.token_hex(24)
    values.update(overrides)
    return values


def service_environment(service: Mapping[str, Any], hosts: Mapping[str, str]) -> dict[str, str]:
    """The `environment` of an interpolated compose service (`load_compose(dotenv)["services"][name]`), with the
    other services' names (compose DNS) replaced by their 127.0.0.1 addresses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    out = {}
    for key, value in env.items():
        text = "" if value is None else str(value)
        for old, new in hosts.items():
            text = text.replace(old, new)
        out[key] = text
    return out


def leftover_service_hosts(env: Mapping[str, str]) -> list[str]:
    """Variables that still name a compose service host (a translation the native run missed)."""
    return [k for k, v in env.items() if any(h in v for h in SERVICE_HOSTS)]


# ---- Delta tables on S3, read without Spark ---------------------------------------------------------------


def delta_active_files(s3, bucket: str, table_prefix: str) -> list[dict[str, Any]]:
    """The `add` actions live at the table's newest version, replayed from its JSON commits (the tables here
    have fewer than the 10 commits after which Delta writes a checkpoint: refused otherwise)."""
    from tests.objectstore import keys

    log = keys(s3, bucket, f"{table_prefix}/_delta_log/")
    assert not [k for k in log if k.endswith(".checkpoint.parquet")], f"{table_prefix}: checkpointed, replay it"
    active: dict[str, dict[str, Any]] = {}
    for key in sorted(k for k in log if k.endswith(".json")):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        for line in body.splitlines():
            action = json.loads(line)
            if "add" in action:
                active[action["add"]["path"]] = action["add"]
            elif "remove" in action:
                active.pop(action["remove"]["path"], None)
    return list(active.values())


def _without_views(arrow_type):
    import pyarrow as pa

    if pa.types.is_string_view(arrow_type) or pa.types.is_large_string(arrow_type):
        return pa.string()
    if pa.types.is_binary_view(arrow_type) or pa.types.is_large_binary(arrow_type):
        return pa.binary()
    if pa.types.is_timestamp(arrow_type):  # Spark's INT96 reads as naive ns, delta-rs writes UTC us
        return pa.timestamp("us", tz="UTC")
    return arrow_type


def read_delta(s3, endpoint: str, access_key: str, secret_key: str, bucket: str, table_prefix: str,
               where: Mapping[str, str] | None = None):
    """The rows of a Delta table on S3 as a pyarrow Table (None when it has no live file), read with pyarrow's
    S3 filesystem from the files the log says are live; `where` keeps the rows whose columns equal the given
    text values (partition columns prune files first)."""
    from urllib.parse import unquote, urlparse

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from pyarrow import fs

    parsed = urlparse(endpoint)
    s3fs = fs.S3FileSystem(access_key=access_key, secret_key=secret_key, endpoint_override=parsed.netloc,
                           scheme=parsed.scheme, region="us-east-1")
    where = dict(where or {})
    parts = []
    for add in delta_active_files(s3, bucket, table_prefix):
        values = add.get("partitionValues") or {}
        if any(k in values and values[k] != v for k, v in where.items()):
            continue
        with s3fs.open_input_file(f"{bucket}/{table_prefix}/{unquote(add['path'])}") as f:
            table = pq.ParquetFile(f).read()  # the file alone: no partition inference from its path
        # delta-rs (the light actions' writer) stores arrow's view types and UTC microseconds where Spark differs
        table = table.cast(pa.schema([field.with_type(_without_views(field.type)) for field in table.schema]))
        for name, value in values.items():  # the log holds a partition column's value (as text)
            if name in table.column_names:  # a writer may also store it in the file: the log wins
                table = table.drop_columns([name])
            table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
        parts.append(table)
    if not parts:
        return None
    table = pa.concat_tables(parts, promote_options="default")
    for name, value in where.items():
        table = table.filter(pc.equal(pc.cast(table.column(name), pa.string()), value))
    return table

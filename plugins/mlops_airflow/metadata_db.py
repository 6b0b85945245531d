"""Connection arguments for Airflow's metadata database, named in the local stack's airflow.cfg
([database] sql_alchemy_connect_args / sql_alchemy_connect_args_async; scripts/local_airflow.py).

On SQLite (the one-machine stack) one writer holds the database at a time and a connection waits 5 s for the
lock by default before "database is locked". Under a busy scheduler that made REST calls fail with HTTP 500 and
stopped the triggerer, whose database loop exits on any exception. A 30 s wait rides that out. Any other database
(the deployment's PostgreSQL, set through AIRFLOW__DATABASE__SQL_ALCHEMY_CONN) gets no extra arguments."""

from __future__ import annotations

from airflow.configuration import conf

SQLITE_BUSY_TIMEOUT_SECONDS = 30

_ON_SQLITE = conf.get("database", "sql_alchemy_conn", fallback="").startswith("sqlite")
CONNECT_ARGS: dict = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS} if _ON_SQLITE else {}
ASYNC_CONNECT_ARGS: dict = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS} if _ON_SQLITE else {}

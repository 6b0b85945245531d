"""Small builders for landing files and readers of what the ingest wrote (shared by the ingest tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

ORDERS_HEADER = "order_id,customer_id,amount,order_ts,channel"


def order(oid: str, day: str, amount: str = "10.00", channel: str = "web", customer: str = "C000001",
          ts: str | None = None) -> str:
    return f"{oid},{customer},{amount},{ts or day + ' 10:00:00'},{channel}"


def csv_text(*rows: str, header: str = ORDERS_HEADER) -> str:
    return header + "\n" + "".join(r + "\n" for r in rows)


def write(landing_root: str | Path, source: str, day: str, name: str, content: str | bytes) -> Path:
    folder = Path(landing_root) / source / day
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def ingest(spark, lakehouse, env, use_case, source: str, dates: Sequence[date | str], *, force: bool = True,
           spec=None, run_id: str = "test-run"):
    from mlops_core.ingest.pipeline import ingest_source

    days = [d if isinstance(d, date) else date.fromisoformat(d) for d in dates]
    return ingest_source(
        spark, lakehouse, source, spec or use_case.sources[source], days,
        landing_root=env.storage.landing_root, run_id=run_id, config_hash=use_case.config_hash, force=force,
    )


def bronze_rows(spark, lakehouse, source: str, day: str | None = None) -> list:
    from mlops_core.tables import bronze

    df = lakehouse.read(spark, bronze(source))
    if day:
        df = df.where(f"ingest_date = '{day}'")
    return df.collect()


def quarantine_rows(spark, lakehouse, source: str, day: str | None = None) -> list:
    from mlops_core.tables import QUARANTINE

    df = lakehouse.read(spark, QUARANTINE).where(f"source = '{source}'")
    if day:
        df = df.where(f"ingest_date = '{day}'")
    return df.collect()


def codes(rows) -> set[str]:
    return {reason.split(":", 1)[0] for r in rows for reason in r["reasons"]}

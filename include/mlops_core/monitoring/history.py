"""What the retrain rule needs, read without Spark: the newest nights of monitoring.drift_metrics and the
drift-triggered retrain records. Used by the triggerer (through asyncio.to_thread) and by tests."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from mlops_core.monitoring import rule as rules
from mlops_core.monitoring.delta_log import read_rows
from mlops_core.monitoring.spec import RuleParams


def recent_metrics(path: str, nights: int) -> list[dict[str, Any]]:
    """drift_metrics rows of the newest `nights` report dates (the table is partitioned by date)."""
    return read_rows(path, latest_partitions=("date", nights))


def evaluate_tables(
    metrics_path: str,
    triggers_path: str,
    rule: RuleParams,
    *,
    expected_date: date | str | None = None,
    now: datetime | None = None,
) -> rules.Decision:
    """Read both tables and apply the rule."""
    # Read more nights than n: with same_model_version, nights of another version are skipped.
    rows = recent_metrics(metrics_path, rule.n * 2 + 5)
    last = rules.last_retrain(read_rows(triggers_path))
    return rules.evaluate(rows, rule, last_retrain_at=last, now=now, expected_date=expected_date)

"""The drift retrain rule, evaluated over drift_metrics rows. Pure Python (no Spark, no pandas): the
triggerer runs it.

A night (one report date) drifted when its dataset drift share reached `drift_share` or any key feature
drifted. The rule holds when at least k of the last n nights drifted, and the last drift-triggered retrain is
older than `cooldown_days`. With `same_model_version` only nights reported for the model version of the
newest night count: a new champion starts a new history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mlops_core.monitoring.spec import DATASET_FEATURE, RuleParams

# Decision statuses. Only RETRAIN asks for a retrain; the others are definitive "no" for the newest night.
RETRAIN = "retrain"
NO_DRIFT = "no_drift"
COOLDOWN = "cooldown"
NO_REPORT = "no_report"


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Night:
    date: str
    model_version: str | None
    drift_share: float | None
    share_drifted: bool
    key_features_drifted: list[str] = field(default_factory=list)
    drifted_features: dict[str, float] = field(default_factory=dict)  # feature -> score
    methods: dict[str, str] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return self.share_drifted or bool(self.key_features_drifted)


@dataclass
class Decision:
    holds: bool
    status: str
    reason: str
    latest_date: str | None
    nights: list[Night] = field(default_factory=list)
    drifted_dates: list[str] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)  # drifted feature -> max score over drifted nights
    cooldown_until: str | None = None
    last_retrain_at: str | None = None
    model_version: str | None = None
    rule: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["nights"] = [{**asdict(n), "drifted": n.drifted} for n in self.nights]
        return out


def nights_from_rows(rows: Iterable[Mapping[str, Any]], rule: RuleParams) -> list[Night]:
    """Group drift_metrics rows by date into nights, newest first: only the rows of the rule's current data
    (batch_scored by default). Dates without a dataset row (a report that died midway) are ignored."""
    by_date: dict[date, list[Mapping[str, Any]]] = {}
    for row in rows:
        # rows written before drift_metrics had current_data describe the batch-scored snapshot
        if (row.get("current_data") or "batch_scored") != rule.current_data:
            continue
        by_date.setdefault(_day(row["date"]), []).append(row)
    key = set(rule.key_features)
    nights = []
    for day in sorted(by_date, reverse=True):
        group = by_date[day]
        dataset = [r for r in group if r.get("feature") == DATASET_FEATURE]
        if not dataset:
            continue
        share = dataset[0].get("drift_share")
        if share is None:
            share = dataset[0].get("score")
        share = float(share) if share is not None else None
        features = [r for r in group if r.get("feature") != DATASET_FEATURE]
        drifted = {str(r["feature"]): float(r.get("score") or 0.0) for r in features if r.get("drifted")}
        nights.append(
            Night(
                date=day.isoformat(),
                model_version=None if dataset[0].get("model_version") is None else str(dataset[0]["model_version"]),
                drift_share=share,
                share_drifted=share is not None and share >= rule.drift_share,
                key_features_drifted=sorted(f for f in drifted if f in key),
                drifted_features=drifted,
                methods={str(r["feature"]): str(r.get("method")) for r in features if r.get("drifted")},
            )
        )
    return nights


def last_retrain(trigger_rows: Iterable[Mapping[str, Any]]) -> datetime | None:
    """Newest `triggered_at` of the retrain trigger records."""
    times = [_when(r["triggered_at"]) for r in trigger_rows if r.get("triggered_at") is not None]
    return max(times) if times else None


def evaluate(
    rows: Iterable[Mapping[str, Any]],
    rule: RuleParams,
    *,
    last_retrain_at: datetime | None = None,
    now: datetime | None = None,
    expected_date: date | str | None = None,
) -> Decision:
    """Apply the rule to drift_metrics rows.

    `expected_date`: the newest night that must have been reported; when the newest report is older the
    status is NO_REPORT (the trigger keeps waiting for it). `now` defaults to the current UTC time."""
    now = _when(now) if now is not None else datetime.now(UTC)
    nights = nights_from_rows(rows, rule)
    latest = nights[0] if nights else None
    common = dict(rule=rule.model_dump(), last_retrain_at=last_retrain_at.isoformat() if last_retrain_at else None)
    if latest is None or (expected_date is not None and _day(latest.date) < _day(expected_date)):
        seen = latest.date if latest else "none"
        return Decision(False, NO_REPORT, f"no drift report for {expected_date or 'any date'} yet (newest: {seen})",
                        latest.date if latest else None, **common)

    considered = [n for n in nights if not rule.same_model_version or n.model_version == latest.model_version]
    considered = considered[: rule.n]
    drifted = [n for n in considered if n.drifted]
    features: dict[str, float] = {}
    for n in drifted:
        for f, s in n.drifted_features.items():
            features[f] = max(s, features.get(f, s))
    decision = Decision(
        holds=False,
        status=NO_DRIFT,
        reason="",
        latest_date=latest.date,
        nights=considered,
        drifted_dates=[n.date for n in drifted],
        features=dict(sorted(features.items(), key=lambda kv: -kv[1])),
        model_version=latest.model_version,
        **common,
    )
    summary = describe(decision, rule)
    if len(drifted) < rule.k:
        decision.reason = f"no retrain: {summary}"
        return decision
    if last_retrain_at is not None and rule.cooldown_days > 0:
        until = last_retrain_at + timedelta(days=rule.cooldown_days)
        if now < until:
            decision.status = COOLDOWN
            decision.cooldown_until = until.isoformat()
            decision.reason = (f"cooldown: a drift retrain was triggered at {last_retrain_at.isoformat()}, "
                               f"next one allowed after {until.isoformat()}; {summary}")
            return decision
    decision.holds = True
    decision.status = RETRAIN
    decision.reason = f"drift: {summary}"
    return decision


def describe(decision: Decision, rule: RuleParams) -> str:
    """One line a human reads in the retrain run's conf: which nights, shares, features and scores."""
    nights = decision.nights
    parts = [f"{len(decision.drifted_dates)} of the last {len(nights)} nightly reports drifted "
             f"(rule: {rule.k} of {rule.n}, drift share >= {rule.drift_share:g}"
             + (f" or a key feature of {', '.join(rule.key_features)}" if rule.key_features else "") + ")"]
    if decision.drifted_dates:
        parts.append("dates " + ", ".join(decision.drifted_dates))
    shares = [f"{n.date}={n.drift_share:.2f}" for n in nights if n.drift_share is not None]
    if shares:
        parts.append("drift share " + ", ".join(shares))
    if decision.features:
        top = list(decision.features.items())[:8]
        parts.append("drifted features " + ", ".join(f"{f} ({s:.3g})" for f, s in top))
    if decision.model_version:
        parts.append(f"model version {decision.model_version}")
    return "; ".join(parts)

"""The retrain rule over drift_metrics rows: k of the last n nights, key features, cooldown, model versions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from mlops_core.monitoring.rule import COOLDOWN, NO_DRIFT, NO_REPORT, RETRAIN, evaluate, last_retrain
from mlops_core.monitoring.spec import DATASET_FEATURE, MonitoringSpec, RuleParams

RULE = RuleParams(k=3, n=5, drift_share=0.5, key_features=["country"], cooldown_days=7)
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def night(day: date, share: float, drifted: tuple[str, ...] = (), version: str = "1") -> list[dict]:
    rows = [{"date": day, "feature": DATASET_FEATURE, "drift_share": share, "score": share, "drifted": share >= 0.5,
             "model_version": version, "method": "share_of_drifted_columns"}]
    for f in ("country", "total_spent_30d", "plan"):
        rows.append({"date": day, "feature": f, "drifted": f in drifted, "score": 0.3 if f in drifted else 0.01,
                     "drift_share": share, "model_version": version, "method": "wasserstein"})
    return rows


def history(flags: list[bool | str], last: date = date(2026, 3, 9), version: str = "1") -> list[dict]:
    """flags oldest -> newest: True = share drift, "key" = only a key feature drifted, False = quiet."""
    rows = []
    for i, flag in enumerate(reversed(flags)):
        day = last - timedelta(days=i)
        if flag is True:
            rows += night(day, 0.7, ("total_spent_30d", "plan"), version)
        elif flag == "key":
            rows += night(day, 0.1, ("country",), version)
        else:
            rows += night(day, 0.0, (), version)
    return rows


@pytest.mark.parametrize(
    ("flags", "holds"),
    [
        ([True, True, True, False, False], True),      # 3 of 5
        ([False, True, False, True, True], True),
        ([True, True, False, False, False], False),    # 2 of 5
        ([True, True, True, False, False, False], False),  # the 3rd drifted night is the 6th newest
        (["key", "key", "key", False, False], True),   # key feature drift alone counts
        ([True, True, True], True),                    # fewer than n nights, k drifted
        ([True, True], False),                         # not enough history
    ],
)
def test_k_of_n(flags, holds):
    decision = evaluate(history(flags), RULE, now=NOW)
    assert decision.holds is holds
    assert decision.status == (RETRAIN if holds else NO_DRIFT)
    assert decision.latest_date == "2026-03-09"
    assert len(decision.nights) == min(len(flags), 5)


def test_reason_names_dates_shares_features_and_scores():
    decision = evaluate(history([True, "key", True, False, True]), RULE, now=NOW)
    assert decision.holds
    assert decision.drifted_dates == ["2026-03-09", "2026-03-07", "2026-03-06", "2026-03-05"]
    assert set(decision.features) == {"total_spent_30d", "plan", "country"}
    for text in ("4 of the last 5", "2026-03-09", "drift share", "total_spent_30d (0.3)", "model version 1"):
        assert text in decision.reason


def test_overrides_change_the_outcome():
    rows = history([True, True, False, False, False])
    assert not evaluate(rows, RULE, now=NOW).holds
    assert evaluate(rows, RULE.override(k=2), now=NOW).holds
    # A higher share threshold: share 0.7 nights no longer count, and without key features nothing does.
    assert not evaluate(history([True] * 5), RULE.override(drift_share=0.8, k=1), now=NOW).holds
    assert evaluate(history([True] * 5), RULE.override(drift_share=0.6, k=1), now=NOW).holds


def test_cooldown_blocks_until_it_ends():
    rows = history([True] * 5)
    recent = NOW - timedelta(days=2)
    blocked = evaluate(rows, RULE, last_retrain_at=recent, now=NOW)
    assert not blocked.holds and blocked.status == COOLDOWN
    assert blocked.cooldown_until == (recent + timedelta(days=7)).isoformat()
    assert evaluate(rows, RULE, last_retrain_at=NOW - timedelta(days=8), now=NOW).holds
    assert evaluate(rows, RULE.override(cooldown_days=0), last_retrain_at=recent, now=NOW).holds


def test_cooldown_only_matters_when_the_rule_would_fire():
    decision = evaluate(history([False] * 5), RULE, last_retrain_at=NOW - timedelta(days=1), now=NOW)
    assert decision.status == NO_DRIFT


def test_last_retrain_reads_naive_and_aware_timestamps():
    rows = [{"triggered_at": datetime(2026, 3, 1, 8)}, {"triggered_at": datetime(2026, 3, 2, 8, tzinfo=UTC)},
            {"triggered_at": None}]
    assert last_retrain(rows) == datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert last_retrain([]) is None


def test_a_new_model_version_starts_a_new_history():
    rows = history([True, True, True, False], last=date(2026, 3, 8), version="1") + night(date(2026, 3, 9), 0.0,
                                                                                          version="2")
    decision = evaluate(rows, RULE, now=NOW)
    assert [n.date for n in decision.nights] == ["2026-03-09"] and not decision.holds
    assert evaluate(rows, RULE.override(same_model_version=False), now=NOW).holds


def test_waits_for_the_expected_night():
    rows = history([True] * 5, last=date(2026, 3, 8))
    waiting = evaluate(rows, RULE, now=NOW, expected_date="2026-03-09")
    assert waiting.status == NO_REPORT and not waiting.holds
    assert evaluate(rows, RULE, now=NOW, expected_date=date(2026, 3, 8)).holds
    assert evaluate([], RULE, now=NOW).status == NO_REPORT


def test_a_night_without_dataset_row_is_ignored():
    rows = history([True] * 3) + [{"date": date(2026, 3, 10), "feature": "country", "drifted": True, "score": 1.0}]
    assert evaluate(rows, RULE, now=NOW).latest_date == "2026-03-09"


def test_rule_from_config_and_param_strings():
    spec = MonitoringSpec(key_features=["country"], drift_share=0.4)
    rule = spec.rule(k="2", n="4", cooldown_days="", key_features="country, plan", drift_share=None)
    assert (rule.k, rule.n, rule.cooldown_days, rule.drift_share) == (2, 4, 7, 0.4)
    assert rule.key_features == ["country", "plan"]
    assert spec.rule(key_features="None").key_features == ["country"]
    with pytest.raises(ValueError, match="must not exceed"):
        spec.rule(k=6, n=5)

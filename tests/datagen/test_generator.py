"""The churn data generator: deterministic for a seed, labels honest to its orders, a real signal,
drift where asked, bad input that never replaces real rows, and fast."""

from __future__ import annotations

import hashlib
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_core.datagen import GenConfig, generate, simulate
from mlops_core.datagen.__main__ import main as cli_main

SMALL = dict(customers=400, days=70, seed=11, start=date(2026, 1, 1))


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _read_day_files(root: Path, source: str) -> pd.DataFrame:
    frames = []
    for f in sorted((root / source).glob("*/part-0.csv")):
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        df["folder"] = f.parent.name
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    ranks = pd.Series(score).rank().to_numpy()
    pos = label == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_same_seed_same_files_other_seed_other_files(tmp_path, churn):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(GenConfig(**SMALL, bad_rate=0.02), a, churn)
    generate(GenConfig(**SMALL, bad_rate=0.02), b, churn)
    generate(GenConfig(**{**SMALL, "seed": 12}, bad_rate=0.02), c, churn)
    assert _tree_digest(a) == _tree_digest(b)
    assert _tree_digest(a) != _tree_digest(c)


def test_landing_layout_and_contract_columns(tmp_path, churn):
    summary = generate(GenConfig(**SMALL), tmp_path, churn)
    first, last = date(2026, 1, 1), date(2026, 1, 1) + timedelta(days=69)
    for source in ("customers", "orders"):
        folders = sorted(p.name for p in (tmp_path / source).iterdir())
        assert folders[0] == first.isoformat() and folders[-1] == last.isoformat() and len(folders) == 70
    header = (tmp_path / "orders" / "2026-01-05" / "part-0.csv").read_text().splitlines()[0]
    assert header.split(",") == [c.name for c in churn.sources["orders"].columns]
    orders = _read_day_files(tmp_path, "orders")
    # Orders of day D land in D's folder; customers of a day signed up that day (or earlier: the initial load).
    assert (orders["order_ts"].str[:10] == orders["folder"]).all()
    customers = _read_day_files(tmp_path, "customers")
    assert (customers["signup_date"] <= customers["folder"]).all()
    assert (customers.loc[customers["folder"] > first.isoformat(), "signup_date"]
            == customers.loc[customers["folder"] > first.isoformat(), "folder"]).all()
    assert set(orders["customer_id"]) <= set(customers["customer_id"])
    assert summary["orders"] == len(orders) and summary["customers"] == len(customers)


def test_labels_agree_with_orders_and_land_30_days_later(tmp_path, churn):
    generate(GenConfig(**SMALL), tmp_path, churn)
    orders = _read_day_files(tmp_path, "orders")
    labels = _read_day_files(tmp_path, "labels")
    assert len(labels) > 0
    label_dates = pd.to_datetime(labels["label_date"])
    assert (label_dates.dt.weekday == 0).all(), "one label date per week, on Mondays"
    assert ((pd.to_datetime(labels["folder"]) - label_dates).dt.days == 30).all()
    order_day = pd.to_datetime(orders["order_ts"]).dt.normalize()
    by_customer = order_day.groupby(orders["customer_id"]).apply(lambda s: np.sort(s.to_numpy()))
    for row in labels.itertuples():
        d = pd.Timestamp(row.label_date)
        days = by_customer.get(row.customer_id, np.array([], dtype="datetime64[ns]"))
        ordered = ((days > d) & (days <= d + pd.Timedelta(days=30))).any()
        assert int(row.churned) == int(not ordered), f"{row.customer_id} {row.label_date}"
    # Every label is for a customer who had signed up by the label date.
    customers = _read_day_files(tmp_path, "customers").set_index("customer_id")
    assert (customers.loc[labels["customer_id"], "signup_date"].to_numpy() <= labels["label_date"].to_numpy()).all()


def test_churners_order_less_before_the_label_date(churn):
    ds = simulate(GenConfig(customers=1500, days=120, seed=3))
    counts = ds.counts
    start = ds.config.start
    recent, last_gap, y = [], [], []
    for row in ds.labels.itertuples():
        d = (date.fromisoformat(row.label_date) - start).days
        c = int(row.customer_id[1:]) - 1
        recent.append(counts[c, max(d - 27, 0) : d + 1].sum())
        active = np.nonzero(counts[c, : d + 1])[0]
        last_gap.append(d - active[-1] if active.size else 999)
        y.append(row.churned)
    recent, last_gap, y = np.array(recent), np.array(last_gap), np.array(y)
    assert 0.1 < y.mean() < 0.5, f"churn rate {y.mean():.2f}"
    assert recent[y == 1].mean() < 0.6 * recent[y == 0].mean()
    # One naive feature already separates the classes well: a model has real signal to find.
    assert _auc(last_gap.astype(float), y) > 0.75


def test_drift_changes_amounts_frequency_and_country_mix_after_the_date():
    base = dict(customers=1500, days=120, seed=5, start=date(2026, 1, 1))
    drift_from = date(2026, 3, 1)
    plain = simulate(GenConfig(**base))
    drifted = simulate(GenConfig(**base, drift_from=drift_from, drift_kinds=("amount", "frequency", "country")))
    cut = (drift_from - base["start"]).days

    def after(ds):
        return ds.orders[ds.orders["day"] >= cut]

    assert after(drifted)["amount"].median() > 1.25 * after(plain)["amount"].median()
    assert len(after(drifted)) < 0.75 * len(after(plain))
    # Same world up to the drift date: drift only changes what happens after it.
    pd.testing.assert_frame_equal(plain.orders[plain.orders["day"] < cut], drifted.orders[drifted.orders["day"] < cut])
    late = drifted.customers["landing_day"] >= cut
    share_new_mix = drifted.customers.loc[late, "country"].isin(["BR", "IN", "JP"]).mean()
    share_old_mix = drifted.customers.loc[~late, "country"].isin(["BR", "IN", "JP"]).mean()
    assert share_new_mix > 0.3 > 0.15 > share_old_mix


def test_bad_input_is_extra_and_real_rows_stay(tmp_path, churn):
    clean_dir, bad_dir = tmp_path / "clean", tmp_path / "bad"
    generate(GenConfig(**SMALL), clean_dir, churn)
    summary = generate(GenConfig(**SMALL, bad_rate=0.05), bad_dir, churn)
    assert summary["written"]["orders"]["bad_rows"] > 0 and summary["written"]["orders"]["bad_files"] > 0
    for source in ("customers", "orders", "labels"):
        for f in sorted((clean_dir / source).glob("*/part-0.csv")):
            good = f.read_text().splitlines()
            bad = (bad_dir / f.relative_to(clean_dir)).read_text().splitlines()
            assert bad[: len(good)] == good, f"real rows of {f} changed"


def test_demo_size_generates_in_a_few_seconds(tmp_path, churn):
    t0 = time.monotonic()
    summary = generate(GenConfig(customers=3000, days=120, seed=7, bad_rate=0.01), tmp_path, churn)
    took = time.monotonic() - t0
    assert summary["orders"] > 20_000
    assert took < 10, f"took {took:.1f}s"


def test_cli_writes_to_the_environment_landing_root_by_default(env, capsys):
    code = cli_main(["--customers", "50", "--days", "10", "--seed", "1", "--start", "2026-02-01",
                     "--drift-from", "2026-02-05", "--drift-kinds", "amount,frequency", "--bad-rate", "0.1"])
    assert code == 0
    landing = Path(env.storage.landing_root)
    assert (landing / "orders" / "2026-02-01" / "part-0.csv").is_file()
    assert '"drift_kinds": [\n    "amount",\n    "frequency"\n  ]' in capsys.readouterr().out


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        cli_main(["--drift-kinds", "amount,weather"])
    assert "unknown drift kinds" in capsys.readouterr().err


def test_monthly_cadence_labels_the_first_of_each_month_over_a_long_history():
    ds = simulate(GenConfig(customers=200, days=400, seed=3, label_cadence="monthly"))
    days = pd.to_datetime(pd.Series(sorted(set(ds.labels["label_date"]))))
    assert (days.dt.day == 1).all() and len(days) == 13  # 2026-01 .. 2027-01: horizons end inside the period
    assert days.iloc[-1] + pd.Timedelta(days=30) <= pd.Timestamp(GenConfig(days=400).end)
    with pytest.raises(ValueError, match="label_cadence"):
        GenConfig(label_cadence="daily")

"""A realistic, deterministic churn dataset: customers, their daily orders, and honest churn labels.

The simulation (vectorised numpy, one Generator per seed):
* Customers: a share already exists on the first day (they land in the first day's customers file, the
  initial load, with their historical signup dates); the rest sign up uniformly over the period and land
  in the file of their signup day. Segment, plan and country drive order rate and basket size.
* Each customer has a latent churn day (exponential hazard by plan; some existing customers have churned
  before the start). In the 28 days before it the order rate and the basket size decline; after it the
  customer orders no more. So churners really do order less often and less in the preceding weeks.
* Orders: Poisson counts per customer and day (weekly seasonality), timestamps within the day, lognormal
  amounts, a channel by segment.
* Labels: every Monday D (`label_cadence: monthly`: the first day of every month) with D + 30 inside the period, for each active customer (signed up by D, and an
  order in the 60 days up to D or a signup in the 30 days up to D): churned = 1 when the customer has no
  order on days D+1 .. D+30. Computed from the simulated orders themselves, and landed in the folder of
  day D+30, when the outcome became known.
* Drift from a date: `amount` (baskets 35 % larger), `country` (new sign-ups from a different country mix),
  `frequency` (everybody orders 40 % less often).
* Bad input at a rate: malformed extra rows appended after the real ones (wrong type, null key, duplicate
  key, a re-delivered order of an earlier day, out-of-range, unknown category, bad timestamp, missing field)
  and whole bad extra files (empty, not UTF-8, truncated, JSON in a CSV folder, missing/extra column). The
  bad input never replaces real rows, so the labels stay consistent with every good order.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.config import UseCaseConfig

SEGMENTS = np.array(["consumer", "small_business", "enterprise"])
SEGMENT_P = [0.6, 0.3, 0.1]
PLANS = np.array(["free", "basic", "premium"])
PLAN_P_BY_SEGMENT = np.array([[0.5, 0.35, 0.15], [0.2, 0.5, 0.3], [0.05, 0.35, 0.6]])
COUNTRIES = np.array(["US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "IN", "JP"])
COUNTRY_P = np.array([0.34, 0.14, 0.13, 0.1, 0.07, 0.06, 0.06, 0.04, 0.03, 0.03])
COUNTRY_P_DRIFT = np.array([0.18, 0.08, 0.08, 0.06, 0.05, 0.05, 0.04, 0.16, 0.18, 0.12])
CHANNELS = np.array(["web", "app", "store"])
CHANNEL_P_BY_SEGMENT = np.array([[0.45, 0.45, 0.1], [0.6, 0.25, 0.15], [0.7, 0.1, 0.2]])
RATE_BY_SEGMENT = np.array([0.12, 0.25, 0.5])  # mean orders per day
RATE_BY_PLAN = np.array([0.7, 1.0, 1.4])
AMOUNT_BY_SEGMENT = np.array([35.0, 120.0, 600.0])  # median basket
HAZARD_BY_PLAN = np.array([1 / 110, 1 / 220, 1 / 420])  # daily churn hazard
DECLINE_DAYS = 28
HORIZON_DAYS = 30
ACTIVE_ORDER_DAYS = 60
ACTIVE_SIGNUP_DAYS = 30
DRIFT_KINDS = ("amount", "country", "frequency")
LABEL_CADENCES = ("weekly", "monthly")

CUSTOMER_COLUMNS = ["customer_id", "segment", "country", "plan", "signup_date"]
ORDER_COLUMNS = ["order_id", "customer_id", "amount", "order_ts", "channel"]
LABEL_COLUMNS = ["customer_id", "label_date", "churned"]


@dataclass
class GenConfig:
    customers: int = 3000
    days: int = 120
    seed: int = 7
    start: date = date(2026, 1, 1)
    drift_from: date | None = None
    drift_kinds: tuple[str, ...] = ()
    bad_rate: float = 0.0
    initial_share: float = 0.5  # customers that exist before the first day
    label_weekday: int = 0  # Monday
    # weekly: a label date every `label_weekday`; monthly: the first day of every month (a long history with
    # few label dates, the shape of monthly-billed businesses)
    label_cadence: str = "weekly"

    def __post_init__(self) -> None:
        if self.customers < 1 or self.days < 1:
            raise ValueError("customers and days must be positive")
        if not 0 <= self.bad_rate <= 1:
            raise ValueError("bad_rate must be between 0 and 1")
        unknown = sorted(set(self.drift_kinds) - set(DRIFT_KINDS))
        if unknown:
            raise ValueError(f"unknown drift kinds {unknown}; choose from {list(DRIFT_KINDS)}")
        if self.label_cadence not in LABEL_CADENCES:
            raise ValueError(f"label_cadence must be one of {list(LABEL_CADENCES)}, not {self.label_cadence!r}")
        if self.drift_kinds and self.drift_from is None:
            raise ValueError("drift kinds need a drift_from date")
        if self.drift_from is not None and not self.drift_kinds:
            self.drift_kinds = DRIFT_KINDS

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days - 1)

    def drift_day(self) -> int | None:
        return None if self.drift_from is None else (self.drift_from - self.start).days


@dataclass
class Dataset:
    """The simulated truth. Dates are day indexes from `config.start` in the latent columns."""

    config: GenConfig
    customers: pd.DataFrame  # CUSTOMER_COLUMNS + landing_day, churn_day, rate
    orders: pd.DataFrame  # ORDER_COLUMNS + day
    labels: pd.DataFrame  # LABEL_COLUMNS + landing_day
    counts: np.ndarray = field(repr=False)  # orders per customer (rows) and day (columns)


def _day_str(start: date, offsets: np.ndarray) -> np.ndarray:
    base = np.datetime64(start.isoformat(), "D")
    return np.datetime_as_string(base + offsets.astype("timedelta64[D]"), unit="D")


def simulate(cfg: GenConfig) -> Dataset:
    import pandas as pd

    # One stream per purpose, so drift after a date leaves everything before it unchanged.
    streams = np.random.SeedSequence(cfg.seed).spawn(6)
    rng, rng_drift, rng_counts, rng_secs, rng_amount, rng_channel = (np.random.default_rng(s) for s in streams)
    n, days = cfg.customers, cfg.days
    drift_day = cfg.drift_day()
    drift = set(cfg.drift_kinds) if drift_day is not None else set()

    # ---- customers ----
    n0 = int(round(n * cfg.initial_share))
    signup = np.empty(n, dtype=np.int64)
    signup[:n0] = -rng.integers(30, 730, size=n0)
    signup[n0:] = rng.integers(0, days, size=n - n0)
    order = np.argsort(signup, kind="stable")
    signup = signup[order]
    segment = rng.choice(3, size=n, p=SEGMENT_P)
    plan = np.minimum((rng.random(n)[:, None] > np.cumsum(PLAN_P_BY_SEGMENT[segment], axis=1)).sum(axis=1), 2)
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_P)
    if "country" in drift:
        late = signup >= drift_day
        country = np.where(late, rng_drift.choice(len(COUNTRIES), size=n, p=COUNTRY_P_DRIFT), country)
    rate = rng.gamma(2.0, 0.5, size=n) * RATE_BY_SEGMENT[segment] * RATE_BY_PLAN[plan]
    basket = AMOUNT_BY_SEGMENT[segment] * rng.lognormal(0.0, 0.35, size=n)
    lifetime = rng.exponential(1.0 / HAZARD_BY_PLAN[plan])
    churn_day = np.where(signup < 0, lifetime - rng.exponential(60.0, size=n), signup + lifetime)
    churn_day = np.maximum(churn_day, signup + 1.0)  # everybody stays at least their signup day

    # ---- daily order counts ----
    t = np.arange(days, dtype=np.float64)[None, :]
    alive = (t >= signup[:, None]) & (t < churn_day[:, None])
    to_churn = churn_day[:, None] - t
    decline = np.clip(0.25 + 0.75 * to_churn / DECLINE_DAYS, 0.25, 1.0)
    weekday = (np.array([(cfg.start + timedelta(days=i)).weekday() for i in range(days)]) >= 5)[None, :]
    season = np.where(weekday, 0.8, 1.05)
    lam = rate[:, None] * alive * decline * season
    if "frequency" in drift:
        lam[:, drift_day:] *= 0.6
    counts = rng_counts.poisson(lam.T).T  # drawn day by day

    # ---- orders ----
    day_idx, cust_idx = np.nonzero(counts.T)  # day-major: later days never shift earlier draws
    reps = counts[cust_idx, day_idx]
    oc, od = np.repeat(cust_idx, reps), np.repeat(day_idx, reps)
    secs = rng_secs.integers(6 * 3600, 23 * 3600, size=oc.size)
    shrink = np.clip(0.6 + 0.4 * (churn_day[oc] - od) / DECLINE_DAYS, 0.6, 1.0)
    amount = basket[oc] * shrink * rng_amount.lognormal(0.0, 0.4, size=oc.size)
    if "amount" in drift:
        amount = np.where(od >= drift_day, amount * 1.35 + 5.0, amount)
    amount = np.round(np.clip(amount, 1.0, 99_999.0), 2)
    chan_u = rng_channel.random(oc.size)[:, None]
    channel = np.minimum((chan_u > np.cumsum(CHANNEL_P_BY_SEGMENT[segment[oc]], axis=1)).sum(axis=1), 2)
    sort = np.lexsort((oc, secs, od))
    oc, od, secs, amount, channel = oc[sort], od[sort], secs[sort], amount[sort], channel[sort]
    ts = np.datetime64(cfg.start.isoformat(), "s") + (od * 86400 + secs).astype("timedelta64[s]")
    customer_ids = np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype(str), 6))
    orders = pd.DataFrame(
        {
            "order_id": np.char.add("O", np.char.zfill(np.arange(1, oc.size + 1).astype(str), 8)),
            "customer_id": customer_ids[oc],
            "amount": amount,
            "order_ts": np.char.replace(np.datetime_as_string(ts, unit="s"), "T", " "),
            "channel": CHANNELS[channel],
            "day": od,
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": customer_ids,
            "segment": SEGMENTS[segment],
            "country": COUNTRIES[country],
            "plan": PLANS[plan],
            "signup_date": _day_str(cfg.start, signup),
            "landing_day": np.maximum(signup, 0),
            "churn_day": churn_day,
            "rate": rate,
        }
    )
    labels = _labels(cfg, counts, signup, customer_ids)
    return Dataset(cfg, customers, orders, labels, counts)


def label_days(cfg: GenConfig) -> list[int]:
    """Day indexes of the label dates whose 30-day horizon lies inside the period."""
    last = cfg.days - HORIZON_DAYS  # exclusive
    if cfg.label_cadence == "monthly":
        out, d = [], cfg.start.replace(day=1)
        while (d - cfg.start).days < last:
            if d >= cfg.start:
                out.append((d - cfg.start).days)
            d = (d.replace(day=28) + timedelta(days=4)).replace(day=1)
        return out
    first_monday = (cfg.label_weekday - cfg.start.weekday()) % 7
    return list(range(first_monday, last, 7))


def _labels(cfg: GenConfig, counts: np.ndarray, signup: np.ndarray, customer_ids: np.ndarray) -> pd.DataFrame:
    import pandas as pd

    days = cfg.days
    cum = np.concatenate([np.zeros((counts.shape[0], 1), dtype=np.int64), counts.cumsum(axis=1)], axis=1)

    def orders_between(first: int, last: int) -> np.ndarray:  # days first..last inclusive, clipped
        first, last = max(first, 0), min(last, days - 1)
        return cum[:, last + 1] - cum[:, first] if last >= first else np.zeros(counts.shape[0], dtype=np.int64)

    parts = []
    for d in label_days(cfg):
        active = (signup <= d) & (
            (orders_between(d - ACTIVE_ORDER_DAYS + 1, d) > 0) | (signup > d - ACTIVE_SIGNUP_DAYS)
        )
        future = orders_between(d + 1, d + HORIZON_DAYS)
        idx = np.nonzero(active)[0]
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": customer_ids[idx],
                    "label_date": (cfg.start + timedelta(days=d)).isoformat(),
                    "churned": (future[idx] == 0).astype(np.int64),
                    "landing_day": d + HORIZON_DAYS,
                }
            )
        )
    if not parts:
        return pd.DataFrame({c: [] for c in [*LABEL_COLUMNS, "landing_day"]})
    return pd.concat(parts, ignore_index=True)


# ---- bad input ----------------------------------------------------------------------------------------
ROW_DEFECTS = {
    "orders": ["wrong_type", "null_key", "duplicate", "redelivered", "out_of_range", "unknown_category",
               "bad_timestamp", "missing_field"],
    "customers": ["null_key", "duplicate", "unknown_category", "bad_date", "missing_field"],
    "labels": ["duplicate", "unknown_category", "bad_date"],
}
FILE_DEFECTS = ["empty", "not_utf8", "truncated", "wrong_format", "missing_column", "extra_column"]


def _bad_rows(source: str, good: list[list[str]], previous: list[list[str]], k: int, rng) -> list[str]:
    """k malformed CSV lines for a day (appended after the good ones)."""
    out = []
    for _ in range(k):
        kind = ROW_DEFECTS[source][rng.integers(len(ROW_DEFECTS[source]))]
        row = list(good[rng.integers(len(good))]) if good else None
        if row is None:
            continue
        fake = f"X{rng.integers(10**8):08d}"
        if source == "orders":
            if kind == "redelivered":  # an order of the day before (on the first day: one of today's)
                row = list(previous[rng.integers(len(previous))]) if previous else row
            elif kind == "duplicate":
                row[2] = f"{float(row[2]) + 1:.2f}"  # same order_id, different amount: keep the first
            else:
                row[0] = fake
                if kind == "wrong_type":
                    row[2] = "12.50 EUR"
                elif kind == "null_key":
                    row[0] = ""
                elif kind == "out_of_range":
                    row[2] = "-15.00"
                elif kind == "unknown_category":
                    row[4] = "fax"
                elif kind == "bad_timestamp":
                    row[3] = row[3].replace(" ", "T").replace("-", "/")
                elif kind == "missing_field":
                    row = row[:-1]
        elif source == "customers":
            if kind != "duplicate":
                row[0] = f"XC{rng.integers(10**6):06d}"
            if kind == "null_key":
                row[0] = ""
            elif kind == "unknown_category":
                row[2] = "XX"
            elif kind == "bad_date":
                row[4] = "31/12/2025"
            elif kind == "missing_field":
                row = row[:-1]
            elif kind == "duplicate":
                row[3] = "premium" if row[3] != "premium" else "free"
        else:  # labels
            if kind == "unknown_category":
                row[0], row[2] = f"XC{rng.integers(10**6):06d}", "2"
            elif kind == "bad_date":
                row[0], row[1] = f"XC{rng.integers(10**6):06d}", "yesterday"
            elif kind == "duplicate":
                row[2] = "1" if row[2] == "0" else "0"
        out.append(",".join(row))
    return out


def _bad_file(kind: str, columns: list[str], day: str, rng) -> tuple[str, bytes]:
    """An extra bad file with fake records (ids start with X, so real rows are never lost)."""
    header = ",".join(columns)
    rows = [",".join(f"X{rng.integers(10**8):08d}" if i == 0 else "x" for i in range(len(columns))) for _ in range(3)]
    if kind == "empty":
        return "part-9.csv", b""
    if kind == "not_utf8":
        return "part-9.csv", (header + "\n" + "\n".join(rows) + ",Müller\n").encode("latin-1")
    if kind == "truncated":
        text = header + "\n" + "\n".join(rows) + "\n" + rows[0]
        return "part-9.csv", text[: len(text) - len(rows[0]) // 2].encode()
    if kind == "wrong_format":
        return "part-9.json", "\n".join(f'{{"{columns[0]}": "X{i}", "day": "{day}"}}' for i in range(3)).encode()
    if kind == "missing_column":
        return "part-9.csv", (",".join(columns[:-1]) + "\n" + "\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n").encode()
    return "part-9.csv", (header + ",note\n" + "\n".join(r + ",extra" for r in rows) + "\n").encode()


# ---- landing files ------------------------------------------------------------------------------------
def _csv_lines(df: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    return df[columns].astype(str).values.tolist()


def _check_contract(use_case: UseCaseConfig) -> None:
    expected = {"customers": CUSTOMER_COLUMNS, "orders": ORDER_COLUMNS, "labels": LABEL_COLUMNS}
    for source, cols in expected.items():
        spec = use_case.sources.get(source)
        if spec is None or spec.format != "csv" or spec.column_names != cols:
            raise ValueError(
                f"use case {use_case.name}: the generator writes {source} as csv with columns {cols}; "
                f"the config declares {None if spec is None else (spec.format, spec.column_names)}"
            )


def write_landing(ds: Dataset, out: str | Path, use_case: UseCaseConfig, clean: bool = False) -> dict[str, Any]:
    """Write one CSV per source and day (<out>/<source path>/<date>/part-0.csv) plus the bad input."""
    _check_contract(use_case)
    cfg, out = ds.config, Path(out)
    rng = np.random.default_rng([cfg.seed, 1])  # bad input has its own stream: same data with or without it
    if clean:
        for spec in use_case.sources.values():
            top = spec.path.split("/", 1)[0]
            if "{" not in top:
                shutil.rmtree(out / top, ignore_errors=True)
    frames = {
        "customers": (ds.customers, CUSTOMER_COLUMNS, ds.customers["landing_day"].to_numpy()),
        "orders": (ds.orders.assign(amount=ds.orders["amount"].map("{:.2f}".format)), ORDER_COLUMNS,
                   ds.orders["day"].to_numpy()),
        "labels": (ds.labels, LABEL_COLUMNS, ds.labels["landing_day"].to_numpy()),
    }
    written = {s: {"files": 0, "rows": 0, "bad_rows": 0, "bad_files": 0} for s in frames}
    for source, (df, columns, landing_day) in frames.items():
        spec = use_case.sources[source]
        order = np.argsort(landing_day, kind="stable")
        df, landing_day = df.iloc[order], landing_day[order]
        bounds = np.searchsorted(landing_day, np.arange(cfg.days + 1))
        previous: list[list[str]] = []
        for d in range(cfg.days):
            part = df.iloc[bounds[d] : bounds[d + 1]]
            if source == "labels" and part.empty:
                continue  # labels only land on the days an outcome became known
            day = (cfg.start + timedelta(days=d)).isoformat()
            folder = Path(spec.folder(str(out), day))
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            good = _csv_lines(part, columns)
            lines = [",".join(r) for r in good]
            if cfg.bad_rate > 0 and good:
                bad = _bad_rows(source, good, previous, int(rng.binomial(len(good), cfg.bad_rate)), rng)
                lines += bad
                written[source]["bad_rows"] += len(bad)
            (folder / "part-0.csv").write_text(",".join(columns) + "\n" + "".join(x + "\n" for x in lines))
            written[source]["files"] += 1
            written[source]["rows"] += len(good)
            if cfg.bad_rate > 0 and source != "labels" and rng.random() < min(0.5, cfg.bad_rate * 5):
                name, content = _bad_file(FILE_DEFECTS[rng.integers(len(FILE_DEFECTS))], columns, day, rng)
                (folder / name).write_bytes(content)
                written[source]["files"] += 1
                written[source]["bad_files"] += 1
            previous = good
    return written


def generate(cfg: GenConfig, out: str | Path, use_case: UseCaseConfig, clean: bool = False) -> dict[str, Any]:
    t0 = time.monotonic()
    ds = simulate(cfg)
    t1 = time.monotonic()
    written = write_landing(ds, out, use_case, clean=clean)
    t2 = time.monotonic()
    labels = ds.labels
    return {
        "out": str(out),
        "start": cfg.start.isoformat(),
        "end": cfg.end.isoformat(),
        "customers": int(len(ds.customers)),
        "orders": int(len(ds.orders)),
        "labels": int(len(labels)),
        "label_dates": int(labels["label_date"].nunique()) if len(labels) else 0,
        "churn_rate": round(float(labels["churned"].mean()), 4) if len(labels) else None,
        "drift_from": cfg.drift_from.isoformat() if cfg.drift_from else None,
        "drift_kinds": list(cfg.drift_kinds),
        "bad_rate": cfg.bad_rate,
        "written": written,
        "seconds": {"simulate": round(t1 - t0, 3), "write": round(t2 - t1, 3)},
    }

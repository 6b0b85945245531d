"""Generate churn landing files: python -m mlops_core.datagen --customers 3000 --days 120 --seed 7

Writes <out>/customers/<date>/part-0.csv, <out>/orders/<date>/part-0.csv and <out>/labels/<date>/part-0.csv
(the paths of the use case's sources), and prints a JSON summary."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from mlops_core.datagen.generator import DRIFT_KINDS, GenConfig, generate


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(DRIFT_KINDS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown drift kinds {unknown}; choose from {','.join(DRIFT_KINDS)}")
    return kinds


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("--bad-rate must be between 0 and 1")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mlops_core.datagen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=3000, help="number of customers (default 3000)")
    p.add_argument("--days", type=int, default=120, help="number of days (default 120)")
    p.add_argument("--seed", type=int, default=7, help="random seed: same seed, same files (default 7)")
    p.add_argument("--start", type=_date, default=date(2026, 1, 1), help="first day (default 2026-01-01)")
    p.add_argument("--out", default=None, help="landing root (default: the environment's storage.landing_root)")
    p.add_argument("--use-case", default="churn", help="use case whose source paths are written (default churn)")
    p.add_argument("--env", default=None, help="environment for the default --out (default $MLOPS_ENV or local)")
    p.add_argument("--drift-from", type=_date, default=None, help="inject drift from this date")
    p.add_argument("--drift-kinds", type=_kinds, default=(),
                   help=f"comma list of {','.join(DRIFT_KINDS)} (default: all, when --drift-from is set)")
    p.add_argument("--bad-rate", type=_rate, default=0.0, help="share of malformed rows, and of days with a bad file")
    p.add_argument("--label-cadence", choices=["weekly", "monthly"], default="weekly",
                   help="a label date every Monday (default) or on the first day of every month")
    p.add_argument("--clean", action="store_true", help="remove the sources' landing folders first")
    args = p.parse_args(argv)

    from mlops_core.config import load_environment, load_use_case

    out = args.out or load_environment(args.env).storage.landing_root
    if "://" in out:
        p.error("--out must be a local folder (upload to object storage separately)")
    try:
        cfg = GenConfig(customers=args.customers, days=args.days, seed=args.seed, start=args.start,
                        drift_from=args.drift_from, drift_kinds=args.drift_kinds, bad_rate=args.bad_rate,
                        label_cadence=args.label_cadence)
    except ValueError as exc:
        p.error(str(exc))
    summary = generate(cfg, out, load_use_case(args.use_case), clean=args.clean)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark harness: run named benchmarks, print a table, write JSON with the machine's description.

    python -m bench.run --list
    python -m bench.run features_incremental                 # default parameters
    python -m bench.run features_incremental --repeats 5 --set rows_per_day=2000

A benchmark is a function `fn(ctx: BenchContext) -> BenchResult` registered in a `bench/bench_*.py` module's
`BENCHMARKS` dict. Results land in bench/results/<name>-<UTC timestamp>.json (git-ignored) with the
parameters, every repeat, the summary figures and the machine: CPU, cores, memory, load average before and
after, Python/Java/Spark versions and the git commit, so a figure is never quoted without its context."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


@dataclass
class BenchContext:
    repeats: int
    params: dict[str, Any]
    work_dir: Path  # scratch space the benchmark may reuse between runs (generated data)

    def param(self, name: str, default: Any) -> Any:
        value = self.params.get(name, default)
        return type(default)(value) if default is not None and not isinstance(value, type(default)) else value


@dataclass
class BenchResult:
    """`rows`: one dict per measured case (printed as a table); `summary`: the headline figures;
    `samples`: raw repeat timings per case."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


Benchmark = Callable[[BenchContext], BenchResult]


def registry() -> dict[str, tuple[Benchmark, str]]:
    """Every benchmark of every bench/bench_*.py module: name -> (function, first doc line)."""
    out: dict[str, tuple[Benchmark, str]] = {}
    for path in sorted(BENCH_DIR.glob("bench_*.py")):
        module = importlib.import_module(f"bench.{path.stem}")
        for name, fn in getattr(module, "BENCHMARKS", {}).items():
            out[name] = (fn, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "")
    return out


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stderr.strip() or ""
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                                  if ln.startswith("model name")), platform.processor())
    except OSError:
        info["cpu_model"] = platform.processor()
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover
        pass
    java = _run(["java", "-version"]).splitlines()
    info["java"] = java[0] if java else None
    try:
        import pyspark

        info["pyspark"] = pyspark.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        info["git_commit"] = commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):  # pragma: no cover
        info["git_commit"] = None
    return info


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"
        return "" if v is None else str(v)

    widths = {c: max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols), "  ".join("-" * widths[c] for c in cols)]
    lines += ["  ".join(cell(r.get(c)).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def _parse_sets(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects name=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--repeats", type=int, default=3, help="measured repeats per case; the median is reported")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="benchmark parameter")
    p.add_argument("--out", default=str(RESULTS_DIR), help="folder for the JSON results")
    p.add_argument("--work-dir", default=str(PROJECT_ROOT / ".local" / "bench"), help="scratch data (reused)")
    args = p.parse_args(argv)

    benchmarks = registry()
    if args.list:
        for name, (_, doc) in benchmarks.items():
            print(f"{name:28s} {doc}")
        return 0
    unknown = sorted(set(args.names) - set(benchmarks))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {sorted(benchmarks)}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = _parse_sets(args.set)
    for name in args.names or list(benchmarks):
        fn, doc = benchmarks[name]
        before = machine_info()
        ctx = BenchContext(repeats=args.repeats, params=params, work_dir=Path(args.work_dir) / name)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        print(f"== {name}: {doc}", flush=True)
        started = time.monotonic()
        result = fn(ctx)
        elapsed = time.monotonic() - started
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        record = {
            "benchmark": name,
            "description": doc,
            "started_utc": stamp,
            "wall_seconds_total": round(elapsed, 1),
            "repeats": args.repeats,
            "params": params,
            "machine": before,
            "load_average_after": os.getloadavg(),
            **asdict(result),
        }
        path = out_dir / f"{name}-{stamp}.json"
        path.write_text(json.dumps(record, indent=2, default=str))
        print(format_table(result.rows))
        for key, value in result.summary.items():
            print(f"{key}: {value}")
        for note in result.notes:
            print(f"note: {note}")
        print(f"load average before {before['load_average']} after {record['load_average_after']}; "
              f"{before['cpu_count']} cores; written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

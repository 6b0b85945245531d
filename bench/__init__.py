"""Benchmarks of the pipeline stages: `python -m bench.run --list`. Results: bench/results/*.json (git-ignored)."""

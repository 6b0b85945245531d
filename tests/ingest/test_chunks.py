"""A backfill is cut into Spark passes by dates and landing bytes: few passes for small data (each pays its
Delta commits), bounded passes for big data."""

from datetime import date, timedelta

from mlops_core.ingest.landing import LandingFile
from mlops_core.ingest.pipeline import plan_chunks


def _listing(sizes: list[int]) -> dict[date, list[LandingFile]]:
    start = date(2026, 1, 1)
    return {start + timedelta(days=i): [LandingFile(f"/l/{i}.csv", size, 0.0)] for i, size in enumerate(sizes)}


def test_small_backfill_is_one_pass():
    listing = _listing([1_000] * 120)
    chunks = plan_chunks(sorted(listing), listing, max_days=366, max_bytes=1 << 30)
    assert chunks == [sorted(listing)]


def test_passes_are_bounded_by_days_and_bytes_and_keep_date_order():
    listing = _listing([10, 10, 10, 50, 10, 10, 10])
    dates = sorted(listing)
    assert plan_chunks(dates, listing, max_days=3, max_bytes=1_000) == [dates[0:3], dates[3:6], dates[6:]]
    # a date bigger than the byte budget still gets a pass of its own
    assert plan_chunks(dates, listing, max_days=366, max_bytes=40) == [dates[0:3], dates[3:4], dates[4:]]

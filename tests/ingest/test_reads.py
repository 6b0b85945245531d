"""What an ingest costs in storage reads: each landing file is fetched once, for both the file checks and the
records (on S3 every fetch of a file is several requests: Spark's metadata probes and a GET). Measured with Hadoop's
own per-scheme counters of the local filesystem the landing zone is on, around a real ingest."""

from __future__ import annotations

from tests.ingest.helpers import ORDERS_HEADER, csv_text, ingest, order, write

DAYS = ("2026-03-02", "2026-03-03")
ROWS_PER_DAY = 5_000  # ~250 KB a day: far above what the Delta commits read back (their logs, a few KB each)


def _local_bytes_read(spark) -> int:
    """Bytes read through Hadoop's `file:` filesystem by this JVM so far (Spark's tasks run in it: local mode)."""
    stats = spark.sparkContext._jvm.org.apache.hadoop.fs.FileSystem.getAllStatistics()
    return sum(stats.get(i).getBytesRead() for i in range(stats.size()) if stats.get(i).getScheme() == "file")


def test_each_landing_file_is_read_once(spark, env, lakehouse, churn):
    paths = []
    for n, day in enumerate(DAYS):
        rows = [order(f"O{n}{i:07d}", day, amount=f"{i % 997}.{i % 100:02d}") for i in range(ROWS_PER_DAY)]
        paths.append(write(env.storage.landing_root, "orders", day, "part-0.csv", csv_text(*rows)))
    # a rejected file (JSON in a CSV source) is read for its checks too, and its bytes count
    paths.append(write(env.storage.landing_root, "orders", DAYS[1], "part-1.csv", '{"order_id": "x"}\n'))
    # and a file split into two header groups: a reordered header gets its own parser, not its own read
    reordered = ",".join(reversed(ORDERS_HEADER.split(",")))
    flipped = ",".join(reversed(order("O9000001", DAYS[0]).split(",")))
    paths.append(write(env.storage.landing_root, "orders", DAYS[0], "part-2.csv", f"{reordered}\n{flipped}\n"))
    landing_bytes = sum(p.stat().st_size for p in paths)

    before = _local_bytes_read(spark)
    result = ingest(spark, lakehouse, env, churn, "orders", DAYS)
    read = _local_bytes_read(spark) - before

    assert result.total("good") == 2 * ROWS_PER_DAY + 1 and result.reasons == {"wrong_format": 1}
    # every byte was read (the checks saw the whole files), and once: a second pass would read them all again
    assert landing_bytes <= read < 1.5 * landing_bytes, (read, landing_bytes)

"""One landing day per kind of bad input, all ingested in one backfill pass of the real pipeline (Spark +
Delta). Every case checks: read = good + quarantined, the counts match the tables, the right reason and level.

Rules (docs/ingest.md): bad values and broken lines quarantine the row; empty, not UTF-8, truncated,
wrong-format files and files whose columns differ from the contract quarantine the whole file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.ingest.helpers import (
    ORDERS_HEADER,
    bronze_rows,
    codes,
    csv_text,
    ingest,
    order,
    quarantine_rows,
    write,
)


@dataclass
class Case:
    files: dict[str, str | bytes]
    good: int
    quarantined: int
    codes: set[str] = field(default_factory=set)  # reason codes expected in quarantine for the day
    level: str | None = None  # "row" | "file": the level of those quarantine entries
    read: int | None = None  # default good + quarantined; given when a file is rejected with its records


def _d(i: int) -> str:
    return (date(2026, 2, 1) + timedelta(days=i)).isoformat()


def _cases() -> dict[str, Case]:
    c: dict[str, Case] = {}

    def add(name, files, good, quarantined, codes=(), level=None, read=None):
        c[name] = Case(files, good, quarantined, set(codes), level, read)

    d = _d(len(c))
    add("wrong_type", {"part-0.csv": csv_text(order("A1", d), order("A2", d), order("A3", d, amount="12.50 EUR"))},
        2, 1, {"invalid_type"}, "row")
    d = _d(len(c))
    add("null_key", {"part-0.csv": csv_text(order("B1", d), order("", d), order("B3", d))}, 2, 1, {"null_key"}, "row")
    d = _d(len(c))
    add("missing_value", {"part-0.csv": csv_text(order("M1", d), order("M2", d, customer=""))}, 1, 1,
        {"missing_value"}, "row")
    d = _d(len(c))
    add("duplicate_within_file",
        {"part-0.csv": csv_text(order("D1", d, amount="1.00"), order("D2", d), order("D1", d, amount="2.00"))},
        2, 1, {"duplicate_key"}, "row")
    d = _d(len(c))
    add("duplicate_across_files",
        {"part-0.csv": csv_text(order("E1", d), order("E2", d)),
         "part-1.csv": csv_text(order("E2", d, amount="99.00"), order("E3", d))},
        3, 1, {"duplicate_key"}, "row")
    d = _d(len(c))
    # Re-delivery of an order ingested on an earlier date (A1 from the first day of this backfill).
    add("duplicate_of_earlier_day", {"part-0.csv": csv_text(order("A1", d), order("F2", d))}, 1, 1,
        {"duplicate_key"}, "row")
    d = _d(len(c))
    add("out_of_range", {"part-0.csv": csv_text(order("G1", d), order("G2", d, amount="-1"),
                                                order("G3", d, amount="100000.01"))},
        1, 2, {"out_of_range"}, "row")
    d = _d(len(c))
    add("unknown_category", {"part-0.csv": csv_text(order("H1", d), order("H2", d, channel="fax"),
                                                    order("H3", d, channel="Web"))},
        1, 2, {"unknown_category"}, "row")
    d = _d(len(c))
    add("unparseable_timestamp", {"part-0.csv": csv_text(order("I1", d), order("I2", d, ts=d + "T10:00:00"),
                                                         order("I3", d, ts="2026-02-30 10:00:00"),
                                                         order("I4", d, ts="yesterday"))},
        1, 3, {"invalid_timestamp"}, "row")
    d = _d(len(c))
    add("malformed_record", {"part-0.csv": csv_text(order("J1", d), "J2,C000001,10.00,web",
                                                    order("J3", d) + ",extra", '"J4,C000001,1.00')},
        1, 3, {"malformed_record"}, "row")
    d = _d(len(c))
    add("missing_columns", {"part-0.csv": csv_text(order("K1", d)),
                            "part-1.csv": csv_text("K2,C000001,1.00,web", "K3,C000001,1.00,web",
                                                   header="order_id,customer_id,amount,channel")},
        1, 2, {"missing_columns"}, "file")
    d = _d(len(c))
    add("unexpected_columns", {"part-0.csv": csv_text(order("L1", d)),
                               "part-1.csv": csv_text(order("L2", d) + ",SPRING", header=ORDERS_HEADER + ",coupon")},
        1, 1, {"unexpected_columns"}, "file")
    d = _d(len(c))
    add("empty_file", {"part-0.csv": csv_text(order("N1", d), order("N2", d)), "part-1.csv": b"",
                       "part-2.csv": "\n\n  \n"},
        2, 0, {"empty_file"}, "file")
    d = _d(len(c))
    truncated = csv_text(order("P2", d), order("P3", d))[:-12]  # cut inside the last record, no newline
    add("truncated_file", {"part-0.csv": csv_text(order("P1", d)), "part-1.csv": truncated},
        1, 2, {"truncated_file"}, "file")
    d = _d(len(c))
    add("wrong_format", {"part-0.csv": csv_text(order("Q1", d)),
                         "part-1.json": '{"order_id": "Q2", "amount": 1}\n{"order_id": "Q3", "amount": 2}\n',
                         "part-2.csv": b"PAR1\x15\x00\x15\x1c\x2c\x00\x00PAR1",
                         "part-3.csv": '{"order_id": "Q4"}\n'},
        1, 3, {"wrong_format"}, "file")
    d = _d(len(c))
    latin1 = csv_text(order("R2", d, customer="C-Müller"), order("R3", d)).encode("latin-1")
    add("not_utf8", {"part-0.csv": csv_text(order("R1", d)), "part-1.csv": latin1}, 1, 2, {"not_utf8"}, "file")
    d = _d(len(c))
    add("header_only_and_crlf_bom", {"part-0.csv": csv_text(),
                                     "part-1.csv": "\ufeff" + csv_text(order("S1", d), order("S2", d)).replace("\n", "\r\n")},
        2, 0)
    return c


CASES = _cases()
DAYS = {name: _d(i) for i, name in enumerate(CASES)}


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    """All cases landed on consecutive days, then one ingest over the whole range (a backfill)."""
    from mlops_core.config import load_environment, load_use_case
    from mlops_core.lakehouse import Lakehouse

    data = tmp_path_factory.mktemp("bad-input")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_DATA_DIR", str(data))
        env, uc = load_environment("local"), load_use_case("churn")
    for name, case in CASES.items():
        for file_name, content in case.files.items():
            write(env.storage.landing_root, "orders", DAYS[name], file_name, content)
    lh = Lakehouse(env, "churn")
    result = ingest(spark, lh, env, uc, "orders", sorted(DAYS.values()))
    return env, uc, lh, result


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_kind(spark, world, name):
    env, _, lh, result = world
    case, day = CASES[name], DAYS[name]
    counts = result.dates[day]
    bronze = bronze_rows(spark, lh, "orders", day)
    quarantine = quarantine_rows(spark, lh, "orders", day)

    assert counts.status == "ingested"
    assert (counts.good, counts.quarantined) == (case.good, case.quarantined)
    assert counts.read == counts.good + counts.quarantined == (case.read or case.good + case.quarantined)
    # The counts are what the tables hold.
    assert len(bronze) == counts.good
    assert sum(r["record_count"] for r in quarantine) == counts.quarantined
    assert codes(quarantine) == case.codes
    if case.level:
        assert {r["level"] for r in quarantine} == {case.level}
    assert counts.files == len(case.files)
    # Good rows are typed, keyed once, and carry their lineage.
    ids = [r["order_id"] for r in bronze]
    assert len(ids) == len(set(ids)) and None not in ids
    for r in bronze:
        assert r["amount"] >= 0 and r["channel"] in ("web", "app", "store")
        assert r["_source_file"].startswith(env.storage.landing_root) and r["_ingest_run_id"] == "test-run"


def test_row_level_quarantine_keeps_the_raw_line_and_its_position(spark, world):
    _, _, lh, _ = world
    rows = quarantine_rows(spark, lh, "orders", DAYS["wrong_type"])
    assert len(rows) == 1
    r = rows[0]
    assert r["raw"] == order("A3", DAYS["wrong_type"], amount="12.50 EUR")
    assert r["line_number"] == 4 and r["record_count"] == 1 and r["_source_file"].endswith("part-0.csv")
    assert r["reasons"] == ["invalid_type: amount='12.50 EUR' is not a double"]


def test_every_failed_check_of_a_row_is_listed(spark, world):
    _, _, lh, _ = world
    day = DAYS["unparseable_timestamp"]
    (bad,) = [r for r in quarantine_rows(spark, lh, "orders", day) if r["raw"].startswith("I3,")]
    assert bad["reasons"] == ["invalid_timestamp: order_ts='2026-02-30 10:00:00' does not match yyyy-MM-dd HH:mm:ss"]
    (fax,) = [r for r in quarantine_rows(spark, lh, "orders", DAYS["unknown_category"]) if r["raw"].startswith("H2,")]
    assert fax["reasons"] == ["unknown_category: channel='fax' not in [web, app, store]"]


def test_duplicates_keep_the_first_occurrence(spark, world):
    _, _, lh, _ = world
    day = DAYS["duplicate_within_file"]
    kept = {r["order_id"]: r["amount"] for r in bronze_rows(spark, lh, "orders", day)}
    assert kept["D1"] == 1.0  # line 2 wins over line 4
    (dup,) = quarantine_rows(spark, lh, "orders", day)
    assert dup["reasons"] == ["duplicate_key: order_id=D1 first seen in part-0.csv:2"]

    across = {r["order_id"]: r["amount"] for r in bronze_rows(spark, lh, "orders", DAYS["duplicate_across_files"])}
    assert across["E2"] == 10.0  # part-0.csv before part-1.csv
    (redelivered,) = quarantine_rows(spark, lh, "orders", DAYS["duplicate_of_earlier_day"])
    assert redelivered["reasons"] == [f"duplicate_key: order_id=A1 already ingested on {DAYS['wrong_type']}"]


def test_file_level_entries_describe_the_file(spark, world):
    _, _, lh, _ = world
    (missing,) = quarantine_rows(spark, lh, "orders", DAYS["missing_columns"])
    assert missing["reasons"] == ["missing_columns: order_ts"]
    assert missing["raw"].startswith("part-1.csv: ") and "first line: 'order_id,customer_id,amount,channel'" in missing["raw"]
    assert missing["line_number"] is None and missing["record_count"] == 2
    empties = quarantine_rows(spark, lh, "orders", DAYS["empty_file"])
    assert sorted(r["reasons"][0] for r in empties) == ["empty_file: 0 bytes", "empty_file: 5 bytes of blank lines"]
    wrong = {Path(r["_source_file"]).name: r["reasons"][0] for r in quarantine_rows(spark, lh, "orders", DAYS["wrong_format"])}
    assert wrong == {
        "part-1.json": "wrong_format: a .json file in a csv source",
        "part-2.csv": "wrong_format: parquet content in a csv source",
        "part-3.csv": "wrong_format: the file holds JSON, not csv",
    }


def test_result_counts_reason_codes(world):
    *_, result = world
    assert result.reasons["duplicate_key"] == 3
    assert result.reasons["wrong_format"] == 3  # files
    assert result.counts["read"] == result.counts["good"] + result.counts["quarantined"]


def test_extra_columns_can_be_flagged_instead(spark, env, lakehouse, churn):
    day = "2026-03-01"
    write(env.storage.landing_root, "orders", day, "part-0.csv", csv_text(order("T1", day)))
    write(env.storage.landing_root, "orders", day, "part-1.csv",
          csv_text(order("T2", day) + ",SPRING", header=ORDERS_HEADER + ",coupon"))
    spec = churn.sources["orders"].model_copy(update={"on_extra_columns": "flag"})
    result = ingest(spark, lakehouse, env, churn, "orders", [day], spec=spec)
    counts = result.dates[day]
    assert (counts.read, counts.good, counts.quarantined) == (2, 2, 0)
    assert counts.flags == ["part-1.csv: unexpected_columns: coupon (not in the contract; not loaded, the file's rows were)"]
    (flag,) = quarantine_rows(spark, lakehouse, "orders", day)
    assert flag["level"] == "file" and flag["record_count"] == 0 and codes([flag]) == {"unexpected_columns"}
    assert sorted(r["order_id"] for r in bronze_rows(spark, lakehouse, "orders", day)) == ["T1", "T2"]


def test_labels_and_customers_contracts(spark, env, lakehouse, churn):
    day = "2026-03-02"
    write(env.storage.landing_root, "labels", day, "part-0.csv", csv_text(
        "C000001,2026-01-31,1", "C000002,2026-01-31,0", "C000003,2026-01-31,2", "C000004,31/01/2026,0",
        "C000001,2026-01-31,0", header="customer_id,label_date,churned"))
    write(env.storage.landing_root, "customers", day, "part-0.csv", csv_text(
        f"C000010,consumer,US,free,{day}", f"C000011,consumer,XX,free,{day}", f"C000012,retail,US,gold,{day}",
        header="customer_id,segment,country,plan,signup_date"))
    labels = ingest(spark, lakehouse, env, churn, "labels", [day]).dates[day]
    customers = ingest(spark, lakehouse, env, churn, "customers", [day]).dates[day]
    assert (labels.read, labels.good, labels.quarantined) == (5, 2, 3)
    assert codes(quarantine_rows(spark, lakehouse, "labels", day)) == {"unknown_category", "invalid_date", "duplicate_key"}
    (dup,) = [r for r in quarantine_rows(spark, lakehouse, "labels", day) if "duplicate_key" in r["reasons"][0]]
    assert dup["reasons"] == ["duplicate_key: customer_id=C000001, label_date=2026-01-31 first seen in part-0.csv:2"]
    assert (customers.read, customers.good, customers.quarantined) == (3, 1, 2)
    (two_bad,) = [r for r in quarantine_rows(spark, lakehouse, "customers", day) if r["raw"].startswith("C000012")]
    assert two_bad["reasons"] == ["unknown_category: segment='retail' not in [consumer, small_business, enterprise]",
                                  "unknown_category: plan='gold' not in [free, basic, premium]"]
    row = bronze_rows(spark, lakehouse, "labels", day)[0]
    assert isinstance(row["label_date"], date) and isinstance(row["churned"], int)


def _variant(churn, fmt: str, path: str):
    from mlops_core.ingest.spec import SourceSpec

    orders = churn.sources["orders"]
    return SourceSpec(format=fmt, path=path, columns=orders.columns, primary_key=orders.primary_key,
                      event_time=orders.event_time)


def test_json_lines_source(spark, env, lakehouse, churn):
    day = "2026-03-03"
    spec = _variant(churn, "json", "orders_json/{date}")
    lines = [
        '{"order_id": "W1", "customer_id": "C1", "amount": 10.5, "order_ts": "2026-03-03 10:00:00", "channel": "web"}',
        '{"order_id": "W2", "customer_id": "C1", "amount": "abc", "order_ts": "2026-03-03 10:00:00", "channel": "web"}',
        '{"order_id": "W3", "customer_id": "C1", "amount": 1, "order_ts": "2026-03-03 10:00:00", "channel": "web", "coupon": "X"}',
        '{"order_id": "W4", "customer_id": "C1", "amount": 1, "order_ts": "2026-03-03 10:00:00"',
        '[1, 2]',
        '{"order_id": "W5", "amount": 1, "order_ts": "2026-03-03 10:00:00", "channel": "app"}',
    ]
    write(env.storage.landing_root, "orders_json", day, "part-0.jsonl", "\n".join(lines) + "\n")
    write(env.storage.landing_root, "orders_json", day, "part-1.json", "order_id,amount\nW9,1\n")
    counts = ingest(spark, lakehouse, env, churn, "orders_json", [day], spec=spec).dates[day]
    assert (counts.read, counts.good, counts.quarantined) == (8, 1, 7)
    rows = quarantine_rows(spark, lakehouse, "orders_json", day)
    by_line = {r["line_number"]: r["reasons"][0].split(":")[0] for r in rows if r["level"] == "row"}
    assert by_line == {2: "invalid_type", 3: "unexpected_fields", 4: "malformed_record", 5: "malformed_record",
                       6: "missing_value"}
    (file_entry,) = [r for r in rows if r["level"] == "file"]
    assert file_entry["reasons"][0].startswith("wrong_format: first line is not a JSON object")
    assert file_entry["record_count"] == 2
    (good,) = bronze_rows(spark, lakehouse, "orders_json", day)
    assert (good["order_id"], good["amount"]) == ("W1", 10.5)


def test_parquet_source(spark, env, lakehouse, churn, tmp_path):
    import pandas as pd

    day = "2026-03-04"
    spec = _variant(churn, "parquet", "orders_parquet/{date}")
    folder = Path(env.storage.landing_root) / "orders_parquet" / day
    folder.mkdir(parents=True)
    frame = pd.DataFrame({
        "order_id": ["Y1", "Y2", "Y3", "Y1"], "customer_id": ["C1"] * 4, "amount": [1.0, 2.0, -3.0, 4.0],
        "order_ts": pd.to_datetime(["2026-03-04 10:00:00"] * 4), "channel": ["web", "fax", "app", "web"],
    })
    # Microsecond timestamps: Spark does not read Parquet's TIMESTAMP(NANOS) (it would be a corrupt_file).
    frame.to_parquet(folder / "part-0.parquet", index=False, coerce_timestamps="us")
    frame.assign(coupon="X").to_parquet(folder / "part-1.parquet", index=False, coerce_timestamps="us")
    whole = (folder / "part-0.parquet").read_bytes()
    (folder / "part-2.parquet").write_bytes(whole[: len(whole) // 2])
    (folder / "part-3.parquet").write_text("order_id\nY9\n")
    counts = ingest(spark, lakehouse, env, churn, "orders_parquet", [day], spec=spec).dates[day]
    rows = quarantine_rows(spark, lakehouse, "orders_parquet", day)
    assert (counts.good, counts.quarantined, counts.files_quarantined) == (1, 3, 3), [r["reasons"] for r in rows]
    assert counts.read == counts.good + counts.quarantined
    assert codes([r for r in rows if r["level"] == "row"]) == {"unknown_category", "out_of_range", "duplicate_key"}
    files = {Path(r["_source_file"]).name: r["reasons"][0].split(":")[0] for r in rows if r["level"] == "file"}
    assert files == {"part-1.parquet": "unexpected_columns", "part-2.parquet": "truncated_file",
                     "part-3.parquet": "wrong_format"}
    (good,) = bronze_rows(spark, lakehouse, "orders_parquet", day)
    assert good["order_id"] == "Y1" and str(good["order_ts"]) == "2026-03-04 10:00:00"

import datetime as dt
import json
from decimal import Decimal

from target_insider_one.deadletter import DeadLetterWriter, JsonlWriter, json_default


def test_file_is_created_lazily_and_lines_are_complete(tmp_path):
    path = tmp_path / "nested" / "dead.jsonl"
    writer = DeadLetterWriter(path, run_id="run1", redact=("super-secret-key",))
    assert not path.exists()
    writer.write(
        reason="no_identifier",
        message="none of the identifier fields has a value",
        stream="Customers",
        record={
            "a": Decimal("1.50"),
            "b": Decimal(3),
            "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            "note": "contains super-secret-key by accident",
        },
        details={"issues": []},
        batch_id="b1",
    )
    writer.flush()
    (line,) = path.read_text().splitlines()
    entry = json.loads(line)
    assert entry["reason"] == "no_identifier"
    assert entry["stream"] == "Customers"
    assert entry["run_id"] == "run1"
    assert entry["batch_id"] == "b1"
    assert entry["record"]["a"] == 1.5
    assert entry["record"]["b"] == 3
    assert entry["record"]["when"] == "2026-01-02T03:04:05+00:00"
    assert "super-secret-key" not in line
    assert entry["at"].endswith("Z")
    writer.close()


def test_appends_across_runs(tmp_path):
    path = tmp_path / "d.jsonl"
    for run in ("r1", "r2"):
        writer = DeadLetterWriter(path, run_id=run)
        writer.write(reason="x", message="m", stream="s", record={"run": run})
        writer.close()
    assert [json.loads(x)["run_id"] for x in path.read_text().splitlines()] == ["r1", "r2"]


def test_jsonl_writer_and_json_default(tmp_path):
    writer = JsonlWriter(tmp_path / "x.jsonl")
    writer.write_line('{"a":1}')
    writer.close()
    assert writer.lines == 1
    assert json_default(Decimal("NaN")) == "NaN"
    assert json_default({1, 2}) in ([1, 2], [2, 1])
    assert json_default(b"x") == "x"


def test_flush_and_hold_leaves_whole_lines_and_blocks_writers(tmp_path):
    # Used right before os._exit on SIGTERM: nothing may be half-written afterwards.
    import threading

    writer = JsonlWriter(tmp_path / "x.jsonl")
    writer.write_line('{"n":1}')
    writer.flush_and_hold()
    assert (tmp_path / "x.jsonl").read_text() == '{"n":1}\n'
    late = threading.Thread(target=writer.write_line, args=('{"n":2}',), daemon=True)
    late.start()
    late.join(0.2)
    assert late.is_alive()  # blocked: the exit happens before it can write


def test_a_rerun_does_not_write_the_same_dead_letters_again(tmp_path):
    path = tmp_path / "d.jsonl"
    records = [{"id": 1, "v": Decimal("1.5")}, {"id": 2, "s": "\ud800"}]
    for run in ("r1", "r2"):
        writer = DeadLetterWriter(path, run_id=run)
        written = [
            writer.write(reason="no_identifier", message=f"m {run}", stream="s", record=r)
            for r in records
        ]
        # a different reason or stream is a different dead letter
        written.append(
            writer.write(reason="bad_request", message="m", stream="s", record=records[0])
        )
        writer.close()
        assert written == ([True, True, True] if run == "r1" else [False, False, False])
    assert writer.duplicates == 3
    assert [json.loads(x)["run_id"] for x in path.read_text().splitlines()] == ["r1"] * 3


def test_dedupe_memory_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr("target_insider_one.deadletter.REMEMBERED_LETTERS", 3)
    writer = DeadLetterWriter(tmp_path / "d.jsonl", run_id="r")
    for i in range(10):
        writer.write(reason="x", message="m", stream="s", record={"i": i})
    assert len(writer._seen) == 3
    assert not writer.write(reason="x", message="m", stream="s", record={"i": 9})
    assert writer.write(reason="x", message="m", stream="s", record={"i": 0})  # forgotten


def test_files_holding_records_are_0600_whatever_the_umask(tmp_path):
    import os

    old = os.umask(0)
    try:
        fresh = JsonlWriter(tmp_path / "new.jsonl")
        fresh.write_line("{}")
        fresh.close()
        wide = tmp_path / "wide.jsonl"
        wide.write_text("")
        wide.chmod(0o666)
        writer = DeadLetterWriter(wide, run_id="r")
        writer.write(reason="x", message="m", stream="s", record={})
        writer.close()
    finally:
        os.umask(old)
    assert (tmp_path / "new.jsonl").stat().st_mode & 0o777 == 0o600
    assert wide.stat().st_mode & 0o777 == 0o600


def test_values_json_cannot_hold_are_described_not_fatal(tmp_path):
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    record = {
        "nan": float("nan"),
        "big": Decimal("1e999999999"),
        "huge_int": 10**5000,
        "deep": deep,
        "sep": "a\u2028b",
    }
    path = tmp_path / "d.jsonl"
    writer = DeadLetterWriter(path, run_id="r")
    writer.write(reason="x", message="m", stream="s", record=record)
    writer.close()
    (line,) = path.read_bytes().decode("utf-8").splitlines()
    entry = json.loads(line)["record"]
    assert entry["nan"] == "nan"
    assert entry["big"] == "1E+999999999"
    assert entry["huge_int"].startswith("<integer of")
    assert entry["sep"] == "a\u2028b"


def _append_lines(path, tag, count):
    writer = JsonlWriter(path)
    for i in range(count):
        # Sizes straddle the io buffer (8 KiB): a writer that split a line into several writes
        # would let another process append between them.
        writer.write_line(json.dumps({"tag": tag, "i": i, "pad": "x" * (1000 + 977 * i % 20000)}))
    writer.close()


def test_processes_appending_to_one_file_never_interleave_lines(tmp_path):
    # Parallel DEs of one fleet may share a dead_letter_path: each line must land whole.
    import multiprocessing

    path = tmp_path / "shared.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_append_lines, args=(path, tag, 300)) for tag in ("a", "b", "c")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]  # a torn line fails here
    assert sorted((e["tag"], e["i"]) for e in entries) == sorted(
        (tag, i) for tag in "abc" for i in range(300)
    )

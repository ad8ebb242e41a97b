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
        writer.write(reason="x", message="m", stream="s", record={})
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

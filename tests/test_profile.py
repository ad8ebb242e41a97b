"""benchmarks/profile.py: py-spy's raw samples folded into per-function shares."""

from __future__ import annotations

from benchmarks.profile import aggregate, frame_label, render

MAIN = 'process 1:"python";main (/venv/lib/python3.11/site-packages/click/core.py:{})'
OURS = "/work/x/target-insider-one/target_insider_one"
RAW = [
    f"{MAIN.format(10)};map_record ({OURS}/mapping.py:170) 3",
    f"{MAIN.format(12)};map_record ({OURS}/mapping.py:171);step ({OURS}/conversion_steps.py:99) 1",
    f"{MAIN.format(10)} 4",
    "",
    "garbage without a count",
]


def test_frame_label_drops_line_numbers_and_install_paths() -> None:
    label = frame_label("validate (/a/b/site-packages/singer_sdk/sinks/core.py:123)")
    assert label == "validate (singer_sdk/sinks/core.py)"
    label = frame_label("open (/tmp/wt/target-insider-one/target_insider_one/settlement.py:9)")
    assert label == "open (target_insider_one/settlement.py)"
    assert frame_label("<module> (<string>)") == "<module> (<string>)"


def test_aggregate_counts_each_function_once_per_sample() -> None:
    profile = aggregate(RAW)
    assert profile.samples == 8
    assert profile.inclusive["main (click/core.py)"] == 8  # two lines of main: one function
    assert profile.inclusive["map_record (target_insider_one/mapping.py)"] == 4
    assert profile.own == {
        "map_record (target_insider_one/mapping.py)": 3,
        "step (target_insider_one/conversion_steps.py)": 1,
        "main (click/core.py)": 4,
    }
    assert profile.processes == {"python": 8}


def test_a_child_process_is_counted_as_itself_and_its_command_line_is_no_frame() -> None:
    # py-spy --subprocesses: the parent, then the child; spawn's command line holds a ';'.
    child = 'process 2:"python -c from multiprocessing.spawn import spawn_main; spawn_main(x=1)"'
    worker = f"to_e164 ({OURS}/phone.py:120)"
    profile = aggregate([*RAW, f'process 1:"python";{child};{worker} 2'])
    assert profile.samples == 10
    assert profile.processes == {
        "python": 8,
        "python -c from multiprocessing.spawn import spawn_main; spawn_main(x=1)": 2,
    }
    assert profile.own["to_e164 (target_insider_one/phone.py)"] == 2
    assert not [label for label in profile.inclusive if "spawn_main" in label]
    assert "- 2 in python -c from multiprocessing.spawn" in render(profile, top=3)


def test_render_gives_shares_in_percent() -> None:
    table = render(aggregate(RAW), top=2)
    assert "| 100.0 | main (click/core.py) |" in table
    assert "| 50.0 | map_record (target_insider_one/mapping.py) |" in table
    assert table.startswith("8 samples")

"""Repository-wide pytest set-up shared by every package's tests."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The suite must pass on a loaded 2-core machine: no per-example deadline, and no health
# check that fails a test because generating data was slow. CI runs derandomized so a
# submission is judged on the same examples every time; locally each run explores new ones.
settings.register_profile(
    "project",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI") == "true",
    print_blob=True,
)
settings.load_profile("project")

# `make test` runs on two pytest-xdist workers with `--dist loadgroup`. The tests under tests/
# run Meltano (or Dagster, or the benchmarks) in this repository's own project and so share
# its `.meltano/`: the plugin virtualenvs `meltano install` builds, the per-plugin run
# directory `meltano invoke` writes the plugin's config into and deletes afterwards, the
# default system database. They form one group, which one worker runs in order, as a serial
# run would. The README test runs in a fresh copy of the repository and needs no group; the
# packages' own tests run their CLIs directly, each against its own sandbox (free ports) and
# temporary files.
SHARED_PROJECT_TESTS = Path(__file__).resolve().parent / "tests"
OWN_PROJECT_COPY = {"test_readme_commands.py"}
SHARED_PROJECT_GROUP = "meltano-project"


def pytest_configure(config: pytest.Config) -> None:
    """Register xdist's marker also for runs without xdist (the suite uses --strict-markers)."""
    config.addinivalue_line("markers", "xdist_group(name): run these tests on one xdist worker")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put every test that uses the repository's Meltano project in one xdist group."""
    for item in items:
        path = item.path
        if path.is_relative_to(SHARED_PROJECT_TESTS) and path.name not in OWN_PROJECT_COPY:
            item.add_marker(pytest.mark.xdist_group(SHARED_PROJECT_GROUP))

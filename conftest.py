"""Repository-wide pytest set-up shared by every package's tests."""

import os

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

# On two pytest-xdist workers (`pytest -n 2 --dist loadgroup`), the tests under tests/ run
# Meltano (or Dagster, or the benchmarks) in this repository's own project and so share its
# `.meltano/`: the plugin virtualenvs `meltano install` builds, the per-plugin run directory
# `meltano invoke`/`run` write the plugin's config and state.json into and delete afterwards,
# the default system database. They form one group, which one worker runs in order, as a serial
# run would. The README test runs in a fresh copy of the repository and needs no group; the
# packages' own tests run their CLIs directly, each against its own sandbox (free ports) and
# temporary files. The group is chosen by path in the scheduler: xdist 3.8's `xdist_group`
# marker does nothing under pytest 9.2 (it renames `item._nodeid`, which pytest no longer reads).
SHARED_PROJECT_TESTS = "tests/"
OWN_PROJECT_COPY = "tests/test_readme_commands.py"
SHARED_PROJECT_GROUP = "meltano-project"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """Under `--dist loadgroup`: every test sharing the Meltano project goes to one worker."""
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415 - only with xdist running

    class SharedProjectScheduling(LoadScopeScheduling):
        """One work unit for the shared-project tests; every other test is its own unit."""

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if path.startswith(SHARED_PROJECT_TESTS) and path != OWN_PROJECT_COPY:
                return SHARED_PROJECT_GROUP
            return nodeid

    return SharedProjectScheduling(config, log)

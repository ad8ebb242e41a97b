"""Both plugins as a user outside this repository gets them: built, installed, added to Meltano.

Wheels and sdists are built with `python -m build`; a scratch Meltano project adds each
plugin from its Hub-style definition under plugins/ (`meltano add --from-ref`, the Hub
unreachable) with `pip_url` pointing at the built distribution, `meltano install` puts each
in a fresh virtualenv, and the installed plugin answers `--about`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import MELTANO, ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PACKAGES = {"tap-sfmc-de": "extractor", "target-insider-one": "loader"}
VARIANT = "sfmc-to-insider-one"


def definition_path(name: str) -> Path:
    return ROOT / "plugins" / f"{PACKAGES[name]}s" / f"{name}--{VARIANT}.yml"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    for name in PACKAGES:
        subprocess.run(
            [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), name],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
    return out


@pytest.mark.parametrize("name", PACKAGES)
def test_distributions_carry_license_changelog_and_project_urls(dist: Path, name: str) -> None:
    stem = name.replace("-", "_")
    with zipfile.ZipFile(dist / f"{stem}-0.1.0-py3-none-any.whl") as wheel:
        metadata = wheel.read(f"{stem}-0.1.0.dist-info/METADATA").decode()
        assert f"{stem}-0.1.0.dist-info/licenses/LICENSE" in wheel.namelist()
    assert "License-Expression: Apache-2.0" in metadata
    for label in ("Homepage", "Documentation", "Repository", "Issues", "Changelog"):
        assert f"Project-URL: {label}, https://" in metadata
    assert "Classifier: Programming Language :: Python :: 3.11" in metadata
    with tarfile.open(dist / f"{stem}-0.1.0.tar.gz") as sdist:
        members = {Path(m).relative_to(f"{stem}-0.1.0").as_posix() for m in sdist.getnames()}
    assert {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"} <= members
    assert "## [0.1.0]" in (ROOT / name / "CHANGELOG.md").read_text(encoding="utf-8")


def test_hub_definitions_install_offline_into_a_scratch_project(dist: Path, tmp_path: Path) -> None:
    project = tmp_path / "scratch"
    project.mkdir()
    (project / "meltano.yml").write_text(
        "version: 1\nproject_id: scratch\nsend_anonymous_usage_stats: false\n", encoding="utf-8"
    )
    env = {
        **{
            k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_", "TARGET_"))
        },
        "MELTANO_HUB_URL": "http://127.0.0.1:9",  # nothing listens: any Hub lookup fails
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    constraints = ROOT / "requirements" / "constraints.txt"
    # The tap from its wheel, the target from its sdist: both distributions get installed.
    built = {
        "tap-sfmc-de": dist / "tap_sfmc_de-0.1.0-py3-none-any.whl",
        "target-insider-one": dist / "target_insider_one-0.1.0.tar.gz",
    }

    def meltano(*args: str) -> str:
        result = subprocess.run(
            [MELTANO, *args], cwd=project, env=env, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"meltano {args}:\n{result.stderr[-4000:]}"
        return result.stdout

    for name, kind in PACKAGES.items():
        definition = yaml.safe_load(definition_path(name).read_text(encoding="utf-8"))
        assert definition["pip_url"] == name  # as published: the PyPI package
        assert definition["variant"] == VARIANT
        assert definition["maintenance_status"] == "active"
        assert definition["repo"].startswith("https://")
        assert "meltano_sdk" in definition["keywords"]
        definition["pip_url"] = f"{built[name]} -c {constraints}"
        local = tmp_path / f"{name}.yml"
        local.write_text(yaml.safe_dump(definition), encoding="utf-8")
        meltano("add", kind, name, "--from-ref", str(local), "--no-install")
    meltano("install")

    for name in PACKAGES:
        about = json.loads(meltano("invoke", name, "--about", "--format=json"))
        assert about["name"] == name
        assert about["version"] == "0.1.0"
        definition = yaml.safe_load(definition_path(name).read_text(encoding="utf-8"))
        declared = {s["name"]: s for s in definition["settings"]}
        properties = about["settings"]["properties"]
        assert set(declared) <= set(properties)
        for setting_name, setting in declared.items():
            assert setting.get("value") == properties[setting_name].get("default"), setting_name
        assert definition["settings_group_validation"] == [about["settings"]["required"]]
    listed = meltano("config", "list", "--all", "tap-sfmc-de")  # defaults, not None
    assert "page_size [env: TAP_SFMC_DE_PAGE_SIZE] current value: 2500 (default)" in listed

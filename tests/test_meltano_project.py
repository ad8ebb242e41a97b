"""`meltano.yml` stays in step with the plugins it declares (no subprocesses)."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROJECT = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
PLUGINS = [("extractors", "tap-sfmc-de"), ("loaders", "target-insider-one")]
MELTANO_SCHEMA = json.loads(
    resources.files("meltano").joinpath("schemas/meltano.schema.json").read_text("utf-8")
)
MELTANO_SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(MELTANO_SCHEMA)


def _schema_capabilities(kind: str) -> list[str]:
    parts = MELTANO_SCHEMA["$defs"]["plugins"][kind]["allOf"]
    return next(
        p["properties"]["capabilities"]["items"]["enum"] for p in parts if "properties" in p
    )


MELTANO_SCHEMA_CAPABILITIES = {kind: _schema_capabilities(kind) for kind, _ in PLUGINS}

JSON_TO_MELTANO_KIND = {
    "string": {"string", "options", "date_iso8601"},
    "integer": {"integer"},
    "number": {"string"},  # not decimal: see scripts/about_to_meltano.py (Meltano 4.4 bug)
    "boolean": {"boolean"},
    "array": {"array"},
    "object": {"object"},
}
NO_EFFECT = {"target-insider-one": {"load_method"}}  # SDK built-in that our target ignores


def plugin(kind: str, name: str) -> dict[str, Any]:
    """One plugin definition from meltano.yml."""
    return next(p for p in PROJECT["plugins"][kind] if p["name"] == name)


def json_type(schema: dict[str, Any]) -> str:
    """The non-null JSON-schema type of a property."""
    types = schema.get("type", "string")
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    return types[0]


@functools.cache
def about(executable: str) -> dict[str, Any]:
    """The installed plugin's `--about --format=json` (what Meltano users get)."""
    out = subprocess.run(
        [str(Path(sys.executable).with_name(executable)), "--about", "--format=json"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return json.loads(out)


@pytest.mark.parametrize(("kind", "name"), PLUGINS)
def test_settings_match_about(kind: str, name: str) -> None:
    declared = {s["name"]: s for s in plugin(kind, name)["settings"]}
    properties = about(name)["settings"]["properties"]
    effective = set(properties) - NO_EFFECT.get(name, set())
    assert set(declared) == effective, (
        "meltano.yml settings differ from --about; regenerate with "
        "`.venv/bin/python scripts/about_to_meltano.py`"
    )
    for setting_name in effective:
        schema, setting = properties[setting_name], declared[setting_name]
        assert setting["kind"] in JSON_TO_MELTANO_KIND[json_type(schema)], setting_name
        assert setting.get("value") == schema.get("default"), f"{setting_name}: default"
        assert setting.get("label"), f"{setting_name} has no label"
        assert setting.get("description"), f"{setting_name} has no description"
        is_secret = bool(schema.get("secret") or schema.get("writeOnly"))
        assert bool(setting.get("sensitive")) == is_secret, f"{setting_name}: sensitive flag"
        if "enum" in schema:
            options = {o["value"] for o in setting["options"]}
            assert options == {v for v in schema["enum"] if v is not None}, setting_name


@pytest.mark.parametrize(("kind", "name"), PLUGINS)
def test_required_settings_and_capabilities_match_about(kind: str, name: str) -> None:
    info, declared = about(name), plugin(kind, name)
    assert declared["settings_group_validation"] == [info["settings"]["required"]]
    # Every capability the plugin reports that Meltano's schema knows (validate-records: no).
    known = set(MELTANO_SCHEMA_CAPABILITIES[kind])
    assert declared["capabilities"] == [c for c in info["capabilities"] if c in known]
    assert "structured-logging" in declared["capabilities"]


def test_meltano_yml_is_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "about_to_meltano.py"), "--check"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "path",
    [ROOT / "meltano.yml", *sorted((ROOT / "plugins").glob("*/*.meltano.yml"))],
    ids=lambda p: p.name,
)
def test_project_files_pass_meltanos_own_schema(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = sorted(MELTANO_SCHEMA_VALIDATOR.iter_errors(document), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


@pytest.mark.parametrize(
    ("kind", "name", "secrets"),
    [
        ("extractors", "tap-sfmc-de", {"client_secret", "refresh_token"}),
        ("loaders", "target-insider-one", {"api_key"}),
    ],
)
def test_secrets_are_sensitive_and_never_set_for_prod(
    kind: str, name: str, secrets: set[str]
) -> None:
    declared = {s["name"]: s for s in plugin(kind, name)["settings"]}
    assert secrets <= {n for n, s in declared.items() if s.get("sensitive")}
    assert not secrets & set(plugin(kind, name).get("config", {}))
    prod = next(e for e in PROJECT["environments"] if e["name"] == "prod")
    for configured in prod.get("config", {}).get("plugins", {}).get(kind, []):
        assert not secrets & set(configured.get("config", {})), "prod secrets belong in .env"


def test_job_schedule_and_default_environment() -> None:
    assert PROJECT["default_environment"] == "dev"
    assert {e["name"] for e in PROJECT["environments"]} >= {"dev", "prod"}
    job = next(j for j in PROJECT["jobs"] if j["name"] == "sfmc-to-insider")
    assert job["tasks"] == ["tap-sfmc-de target-insider-one"]
    schedule = next(s for s in PROJECT["schedules"] if s["name"] == "hourly-sync")
    assert schedule["job"] == "sfmc-to-insider"
    assert schedule["interval"] == "0 * * * *"


def test_third_party_plugins_are_pinned_in_the_repository() -> None:
    for path in sorted((ROOT / "plugins").glob("*/*.meltano.yml")):
        definitions = yaml.safe_load(path.read_text(encoding="utf-8"))["plugins"]
        for plugins in definitions.values():
            for definition in plugins:
                assert "==" in definition["pip_url"], f"{path.name}: pin an exact version"
                assert definition.get("namespace"), f"{path.name}: custom plugins need a namespace"


def test_prod_environment_takes_credentials_from_the_environment(tmp_path: Path) -> None:
    import os

    env = {
        **os.environ,
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "TAP_SFMC_DE_CLIENT_ID": "prod-client",
        "TAP_SFMC_DE_CLIENT_SECRET": "prod-secret-value",
        "TAP_SFMC_DE_SUBDOMAIN": "mc0123456789abcdefghijklmnop",
    }
    meltano = str(Path(sys.executable).with_name("meltano"))
    out = subprocess.run(
        [meltano, "--environment=prod", "config", "print", "tap-sfmc-de"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    config = json.loads(out[out.index("{") :])
    assert config["client_id"] == "prod-client"
    assert config["subdomain"] == "mc0123456789abcdefghijklmnop"
    assert "auth_base_url" not in config, "prod must talk to the real SFMC hosts"
    assert "prod-secret-value" not in out, "config print must redact secrets"

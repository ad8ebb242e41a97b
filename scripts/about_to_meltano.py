"""Regenerate the plugin definitions in `meltano.yml` from each plugin's `--about`.

Usage:
    .venv/bin/python scripts/about_to_meltano.py          # rewrite meltano.yml in place
    .venv/bin/python scripts/about_to_meltano.py --check  # exit 1 if meltano.yml is stale

For each of our plugins it rewrites three keys of the plugin's entry under `plugins:`:
`capabilities`, `settings_group_validation` (the schema's required settings) and `settings`
(label, kind, default, description, options, sensitive). Everything else in the file
(comments, config, environments) is left as it is. `tests/test_meltano_project.py` checks
the result against `--about` and against Meltano's own JSON schema for `meltano.yml`.

It also writes the Hub-style definition of each plugin, `plugins/<type>/<name>--<variant>.yml`
(what a Meltano Hub entry holds: repo, docs, variant, keywords, maintenance status, settings
with defaults), which `meltano add <type> <name> --from-ref <file>` accepts
(`tests/test_packaging.py`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
MELTANO_YML = ROOT / "meltano.yml"
PLUGINS = {"tap-sfmc-de": "extractors", "target-insider-one": "loaders"}
VARIANT = "sfmc-to-insider-one"  # the publishing account on GitHub, as Hub variants are named
REPO = "https://github.com/sfmc-to-insider-one/sfmc-to-insider-one"
HUB = {
    "tap-sfmc-de": {
        "label": "SFMC Data Extensions",
        "description": "Rows of Salesforce Marketing Cloud Data Extensions, incrementally",
        "domain_url": "https://www.salesforce.com/marketing/",
        "keywords": ["meltano_sdk", "salesforce-marketing-cloud", "sfmc", "data-extension"],
    },
    "target-insider-one": {
        "label": "Insider One",
        "description": "Upserts records into Insider One as user profiles",
        "domain_url": "https://useinsider.com/",
        "keywords": ["meltano_sdk", "insider", "insider-one", "reverse-etl"],
    },
}

# JSON-schema "number" settings are declared `string`, not `decimal`: Meltano 4.4 turns a
# decimal setting that comes from an environment variable into a Decimal and then fails to
# write the plugin's config file ("Object of type Decimal is not JSON serializable"), and
# `integer` rejects "0.5". As a string, "0.5" reaches the plugin, which reads numbers given
# as text (tap_sfmc_de/text_numbers.py, target_insider_one/text_numbers.py); a number
# written in meltano.yml stays a number.
KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "string",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
}

# Settings the SDK adds to every target that have no effect in ours: Insider upserts by
# identifier whatever the load method says.
NO_EFFECT = {"target-insider-one": {"load_method"}}

# Capabilities Meltano's schema accepts per plugin type (meltano/schemas/meltano.schema.json);
# `validate-records` is not among the loader's, although the SDK reports it.
UNKNOWN_TO_MELTANO = {"validate-records"}


def about(executable: str) -> dict[str, Any]:
    """The plugin's `--about --format=json`."""
    out = subprocess.run(  # noqa: S603 - our own plugin executables
        [str(Path(sys.executable).with_name(executable)), "--about", "--format=json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def meltano_kind(schema: dict[str, Any]) -> str:
    """Meltano setting kind for one JSON-schema property."""
    if "enum" in schema:
        return "options"
    types = schema.get("type", "string")
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    if schema.get("format") == "date-time":
        return "date_iso8601"
    return KINDS.get(types[0] if types else "string", "string")


def settings_for(executable: str, info: dict[str, Any]) -> list[dict[str, Any]]:
    """Meltano setting definitions for every top-level config property that has an effect."""
    settings = []
    for name, schema in info["settings"]["properties"].items():
        if name in NO_EFFECT.get(executable, set()):
            continue
        setting: dict[str, Any] = {
            "name": name,
            "label": schema.get("title") or name.replace("_", " ").capitalize(),
            "kind": meltano_kind(schema),
            "description": " ".join(str(schema.get("description", "")).split()),
        }
        if schema.get("default") is not None:
            setting["value"] = schema["default"]
        if "enum" in schema:
            setting["options"] = [{"label": str(v), "value": v} for v in schema["enum"] if v]
        if schema.get("secret") or schema.get("writeOnly"):
            setting["sensitive"] = True
        settings.append(setting)
    return settings


def capabilities_for(info: dict[str, Any]) -> list[str]:
    """The plugin's capabilities that Meltano's schema knows."""
    return [c for c in info["capabilities"] if c not in UNKNOWN_TO_MELTANO]


def _flow(value: Any) -> str:
    """One YAML flow scalar/collection (JSON is valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def render(executable: str, info: dict[str, Any]) -> tuple[str, str]:
    """The `capabilities:` line and the `settings_group_validation:` + `settings:` block."""
    capabilities = f"    capabilities: [{', '.join(capabilities_for(info))}]\n"
    required = info["settings"].get("required", [])
    lines = ["    settings_group_validation:", f"    - [{', '.join(required)}]", "    settings:"]
    for setting in settings_for(executable, info):
        lines += [f"    - name: {setting['name']}", f"      label: {_flow(setting['label'])}"]
        lines.append(f"      kind: {setting['kind']}")
        if "value" in setting:
            lines.append(f"      value: {_flow(setting['value'])}")
        if setting["description"]:
            lines.append(f"      description: {_flow(setting['description'])}")
        for index, option in enumerate(setting.get("options", [])):
            if index == 0:
                lines.append("      options:")
            label, value = _flow(option["label"]), _flow(option["value"])
            lines.append(f"      - {{label: {label}, value: {value}}}")
        if setting.get("sensitive"):
            lines.append("      sensitive: true")
    return capabilities, "\n".join(lines) + "\n"


def rewrite(text: str, executable: str, info: dict[str, Any]) -> str:
    """`meltano.yml` text with one plugin's generated keys replaced."""
    lines = text.splitlines(keepends=True)
    start = lines.index(f"  - name: {executable}\n")
    end = next(
        (i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")),
        len(lines),
    )
    capabilities, settings = render(executable, info)
    kept: list[str] = []
    in_generated = False
    for line in lines[start:end]:
        key = re.match(r"    ([a-z_]+):", line)
        if key:
            in_generated = key.group(1) in {"settings", "settings_group_validation"}
            if key.group(1) == "capabilities":
                line = capabilities  # noqa: PLW2901
        if not in_generated:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    trailing = [line for line in lines[start:end] if not line.strip()][-1:]
    return "".join([*lines[:start], *kept, settings, *trailing, *lines[end:]])


def hub_path(executable: str) -> Path:
    """Where the plugin's Hub-style definition lives."""
    return ROOT / "plugins" / PLUGINS[executable] / f"{executable}--{VARIANT}.yml"


def hub_definition(executable: str, info: dict[str, Any]) -> str:
    """The plugin's Hub-style definition (YAML), pip_url naming the PyPI package."""
    definition = {
        "name": executable,
        "variant": VARIANT,
        "namespace": executable.replace("-", "_"),
        "label": HUB[executable]["label"],
        "description": HUB[executable]["description"],
        "domain_url": HUB[executable]["domain_url"],
        "repo": REPO,
        "docs": f"{REPO}/blob/main/{executable}/README.md",
        "pip_url": executable,
        "executable": executable,
        "maintenance_status": "active",
        "keywords": HUB[executable]["keywords"],
        "capabilities": capabilities_for(info),
        "settings_group_validation": [info["settings"].get("required", [])],
        "settings": settings_for(executable, info),
    }
    header = (
        f"# Hub-style definition of {executable} (variant {VARIANT}), generated from its\n"
        "# `--about` by scripts/about_to_meltano.py. Add it to a project with\n"
        f"#   meltano add {PLUGINS[executable][:-1]} {executable} --from-ref <this file>\n"
    )
    return header + yaml.safe_dump(definition, sort_keys=False, allow_unicode=True, width=100)


def generated_files() -> dict[Path, str]:
    """Every generated file with its fresh content."""
    files = {MELTANO_YML: MELTANO_YML.read_text(encoding="utf-8")}
    for executable in PLUGINS:
        info = about(executable)
        files[MELTANO_YML] = rewrite(files[MELTANO_YML], executable, info)
        files[hub_path(executable)] = hub_definition(executable, info)
    return files


def main() -> None:
    """Rewrite meltano.yml and the Hub-style definitions, or check that they are current."""
    stale = []
    for path, fresh in generated_files().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if fresh == current:
            continue
        stale.append(path.relative_to(ROOT))
        if "--check" not in sys.argv[1:]:
            path.write_text(fresh, encoding="utf-8")
    if stale and "--check" in sys.argv[1:]:
        raise SystemExit(
            f"{', '.join(map(str, stale))} out of step with the plugins: run "
            "`.venv/bin/python scripts/about_to_meltano.py`"
        )


if __name__ == "__main__":
    main()

"""Print a plugin's Meltano `settings:` block from its `--about --format=json`.

Usage: .venv/bin/python scripts/about_to_meltano.py tap-sfmc-de > /tmp/settings.yml

`meltano.yml` must stay in step with each plugin's `config_jsonschema`;
`tests/test_meltano_project.py` checks it, and this prints what to paste when it fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

# JSON-schema "number" settings are declared `integer`, not `decimal`: Meltano 4.4 turns a
# decimal setting that comes from an environment variable into a Decimal and then fails to
# serialise the plugin's config ("Object of type Decimal is not JSON serializable").
# Whole numbers pass from the environment; fractions can still be written in meltano.yml.
KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "integer",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
}


def meltano_kind(schema: dict[str, Any]) -> str:
    """Meltano setting kind for one JSON-schema property."""
    if "enum" in schema:
        return "options"
    types = schema.get("type", "string")
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    if schema.get("format") == "date-time":
        return "date_iso8601"
    return KINDS.get(types[0] if types else "string", "string")


def settings_for(executable: str) -> list[dict[str, Any]]:
    """Meltano setting definitions for every top-level config property."""
    about = subprocess.run(  # noqa: S603 - our own plugin executables
        [str(Path(sys.executable).with_name(executable)), "--about", "--format=json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    properties = json.loads(about)["settings"]["properties"]
    settings = []
    for name, schema in properties.items():
        setting: dict[str, Any] = {
            "name": name,
            "label": schema.get("title") or name.replace("_", " ").capitalize(),
            "kind": meltano_kind(schema),
            "description": " ".join(str(schema.get("description", "")).split()),
        }
        if "enum" in schema:
            setting["options"] = [{"label": str(v), "value": v} for v in schema["enum"] if v]
        if schema.get("secret") or schema.get("writeOnly"):
            setting["sensitive"] = True
        settings.append(setting)
    return settings


def main() -> None:
    """Print the YAML block."""
    for setting in settings_for(sys.argv[1]):
        print(f"    - name: {setting['name']}")
        print(f"      label: {json.dumps(setting['label'])}")
        print(f"      kind: {setting['kind']}")
        if setting["description"]:
            print(f"      description: {json.dumps(setting['description'], ensure_ascii=False)}")
        for option in setting.get("options", []):
            if option is setting["options"][0]:
                print("      options:")
            label, value = json.dumps(option["label"]), json.dumps(option["value"])
            print(f"      - {{label: {label}, value: {value}}}")
        if setting.get("sensitive"):
            print("      sensitive: true")


if __name__ == "__main__":
    main()

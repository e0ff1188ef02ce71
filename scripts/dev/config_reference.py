"""Write docs/config.md, the configuration reference, from workflow/schemas/config.schema.yaml
(every key's type, default and description), so the reference cannot drift from what the
workflow checks. `--check` only compares and exits 1 when the file is stale or a key has no
description (the test suite runs it).

    .venv/bin/python scripts/dev/config_reference.py            # rewrite docs/config.md
    .venv/bin/python scripts/dev/config_reference.py --check    # CI
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
OUT = ROOT / "docs" / "config.md"


def resolve(node: Any, defs: dict[str, Any]) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def kind(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "oneOf" in node:
        return " or ".join(kind(resolve(n, defs), defs) for n in node["oneOf"])
    types = node.get("type", "object")
    return " or ".join(types) if isinstance(types, list) else types


def rows(
    node: dict[str, Any], path: str, defs: dict[str, Any], out: list[tuple[str, dict[str, Any]]]
) -> None:
    """Every key below ``node`` as (dotted path, its schema), depth first."""
    for key, sub in (node.get("properties") or {}).items():
        sub = resolve(sub, defs)
        out.append((f"{path}.{key}" if path else key, sub))
        rows(sub, f"{path}.{key}" if path else key, defs, out)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        rows(resolve(extra, defs), f"{path}.<name>", defs, out)


def render(schema: dict[str, Any]) -> tuple[str, list[str]]:
    defs = schema.get("$defs", {})
    keys: list[tuple[str, dict[str, Any]]] = []
    rows(schema, "", defs, keys)
    undocumented = [path for path, node in keys if not node.get("description")]
    lines = [
        "# Configuration reference",
        "",
        "Generated from `workflow/schemas/config.schema.yaml` by `scripts/dev/config_reference.py`; do not edit",
        "(the tests fail when it is stale). Every key is checked against the schema before any job starts.",
        "How config files combine, and the example configs: [config/README.md](../config/README.md).",
        "",
    ]
    sections: dict[str, list[str]] = {}  # a key's row goes under the block that holds it
    for path, node in keys:
        block = path.rsplit(".", 1)[0] if "." in path else "top level"
        default = f"`{json.dumps(node['default'])}`" if "default" in node else ""
        text = " ".join(str(node.get("description", "")).split()).replace("|", "\\|")
        sections.setdefault(block, []).append(f"| `{path}` | {kind(node, defs)} | {default} | {text} |")
    for block, table in sections.items():
        title = block if block == "top level" else f"`{block}`"
        lines += [f"## {title}", "", "| key | type | default | meaning |", "|---|---|---|---|", *table, ""]
    return "\n".join(lines).rstrip() + "\n", undocumented


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="compare only; exit 1 when stale or undocumented"
    )
    args = parser.parse_args()
    text, undocumented = render(yaml.safe_load(SCHEMA.read_text()))
    if undocumented:
        print(f"keys without a description in {SCHEMA.name}: {', '.join(undocumented)}", file=sys.stderr)
        return 1
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run .venv/bin/python scripts/dev/config_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The chart's generated files, from its values model (`chart_values.Values`).

    python -m recipe_api.chart_files CHART_DIR        # make chart-values

writes values.yaml (each default under its `# --` comment, a section under a plain comment, a
Kubernetes object as one documented block), values.schema.json (the models' JSON schema with
references inlined, so `helm install` rejects a misspelt or mistyped value) and the values table between the markers of
README.md. tests/chart checks that the three files are what this writes.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .base import ApiModel
from .chart_kubernetes import KubernetesObject
from .chart_values import Values

SCHEMA_URL = "https://json-schema.org/draft-07/schema#"
README_START, README_END = "<!-- values:start -->", "<!-- values:end -->"


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key, as values.yaml has always been written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """Strings YAML would otherwise read as something else (`""`, `"1"`) in double quotes."""
    quoted = value == "" or not isinstance(yaml.safe_load(value), str)
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if quoted else None)


_Dumper.add_representer(str, _string)


def _key(info: FieldInfo, name: str) -> str:
    return info.alias or name


def _plain(value: Any) -> Any:
    """A default as values.yaml and the README show it: a Kubernetes object without its unset fields."""
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_none=True, mode="json")
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _leaves(model: ApiModel, prefix: str = "") -> list[tuple[str, FieldInfo, Any, int]]:
    """(dotted key, field, default, depth) of every value, sections expanded, in file order."""
    found = []
    for name, info in type(model).model_fields.items():
        if (info.json_schema_extra or {}).get("x-not-in-values-yaml"):
            continue
        key, value = _key(info, name), getattr(model, name)
        if isinstance(value, ApiModel) and not isinstance(value, KubernetesObject):
            found.append((prefix + key, info, None, prefix.count(".")))  # a section
            found += _leaves(value, f"{prefix}{key}.")
        else:
            found.append((prefix + key, info, value, prefix.count(".")))
    return found


def values_yaml() -> str:
    """values.yaml: the defaults, each under a `# --` comment (sections have none)."""
    doc = " ".join((Values.__doc__ or "").split())
    lines = ["# " + line for line in textwrap.wrap(doc, 98)]
    lines.append("# Generated from api/recipe_api/chart_values.py by `make chart-values`: edit that file.")
    for path, info, value, depth in _leaves(Values()):
        indent = "  " * depth
        if depth == 0:
            lines.append("")
        key = path.rsplit(".", 1)[-1]
        if _is_section(info):  # its description as a plain comment: its keys carry their own `# --`
            text = textwrap.wrap(" ".join((info.description or "").split()), 100 - len(indent) - 2)
            lines += [f"{indent}# {line}" for line in text]
            lines.append(f"{indent}{key}:")
            continue
        text = textwrap.wrap(" ".join((info.description or "").split()), 100 - len(indent) - 5)
        lines += [f"{indent}# -- {text[0]}", *(f"{indent}# {line}" for line in text[1:])]
        dumped = yaml.dump({key: _plain(value)}, Dumper=_Dumper, sort_keys=False, width=200)
        lines += [indent + line for line in dumped.rstrip("\n").split("\n")]
    return "\n".join(lines) + "\n"


def _is_section(info: FieldInfo) -> bool:
    annotation = info.annotation
    return (
        isinstance(annotation, type)
        and issubclass(annotation, ApiModel)
        and not issubclass(annotation, KubernetesObject)
    )


def values_schema() -> dict[str, Any]:
    """values.schema.json: the models' JSON schema, references inlined, without titles or defaults."""
    schema = Values.model_json_schema(by_alias=True)
    definitions = schema.pop("$defs", {})

    def clean(node: Any) -> Any:
        if isinstance(node, list):
            return [clean(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = definitions[node["$ref"].rsplit("/", 1)[-1]]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        options = node.get("anyOf")
        if options and {"type": "null"} in options:  # optional: absent, never null
            rest = [option for option in options if option != {"type": "null"}]
            outer = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**(rest[0] if len(rest) == 1 else {"anyOf": rest}), **outer}
            if "$ref" in node:
                return clean(node)
        return {k: clean(v) for k, v in node.items() if k not in ("title", "default", "x-not-in-values-yaml")}

    return {"$schema": SCHEMA_URL, "title": "recipe-training-operator values", **clean(schema)}


def readme_table() -> str:
    """The README's values table: key, default, description."""
    rows = ["| Key | Default | Description |", "|---|---|---|"]
    for path, info, value, _depth in _leaves(Values()):
        if _is_section(info):
            continue
        default = json.dumps(_plain(value), separators=(", ", ": "))
        description = " ".join((info.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{path}` | `{default}` | {description} |")
    return "\n".join(rows)


def generated(chart: Path) -> dict[Path, str]:
    """Every generated file of the chart and its text (the README keeps what is outside its markers)."""
    readme = chart / "README.md"
    text = (
        readme.read_text()
        if readme.exists()
        else f"# recipe-training-operator\n\n{README_START}\n{README_END}\n"
    )
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    return {
        chart / "values.yaml": values_yaml(),
        chart / "values.schema.json": json.dumps(values_schema(), indent=2) + "\n",
        readme: f"{head}{README_START}\n{readme_table()}\n{README_END}{tail}",
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m recipe_api.chart_files CHART_DIR", file=sys.stderr)
        return 2
    for path, text in generated(Path(argv[0])).items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

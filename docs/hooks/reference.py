"""MkDocs hook: the command-line and configuration references, generated at build time from
kdcg's own argparse parser and the config's JSON schema, so that they cannot drift from the
code (nothing in them is written by hand but the pages' first paragraphs)."""

from __future__ import annotations

import argparse

import yaml

CLI_PAGE = "reference/cli.md"
CONFIG_PAGE = "reference/configuration.md"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def cli_reference() -> str:
    from kdcg.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = ["## Commands", ""]
    for name, command in sub.choices.items():
        out += [f"### kdcg {name}", "", command.description or "", "", "```text",
                command.format_usage().replace("usage: ", "").strip(), "```", "",
                "| argument | what it is | default |", "|---|---|---|"]
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flags = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.dest}`"
            default = "" if action.default in (None, argparse.SUPPRESS, False) or action.required else f"`{action.default}`"
            out.append(f"| {flags} | {_cell(action.help or '')} | {_cell(default)} |")
        if command.epilog:
            out += ["", "```text", command.epilog.strip(), "```"]
        out.append("")
    return "\n".join(out)


def _describe_type(schema: dict) -> str:
    kind = schema.get("type", "")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array" and isinstance(schema.get("items"), dict) and schema["items"].get("type"):
        kind = f"list of {schema['items']['type']}"
    limits = [f"{word} {schema[key]}" for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"),
                                                        ("maximum", "≤"), ("exclusiveMaximum", "<"),
                                                        ("minItems", "items ≥")) if key in schema]
    if "enum" in schema:
        limits.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    return ", ".join([kind, *limits]) if kind else ", ".join(limits)


def _rows(schema: dict, path: str, required: set) -> list[str]:
    rows = []
    for key, sub in schema.get("properties", {}).items():
        name = f"{path}.{key}" if path else key
        mark = "" if key in required else " (optional)"
        rows.append(f"| `{name}`{mark} | {_cell(_describe_type(sub))} | {_cell(sub.get('description', ''))} |")
        if sub.get("type") == "object" and "properties" in sub:
            rows += _rows(sub, name, set(sub.get("required", [])))
    return rows


def config_reference() -> str:
    from importlib.resources import files

    schema = yaml.safe_load(files("kdcg").joinpath("config.schema.yaml").read_text())
    out = []
    for key, sub in schema["properties"].items():
        out += [f"## `{key}`", "", sub.get("description", ""), "", "| key | type | what it sets |", "|---|---|---|"]
        if sub.get("type") == "object":
            out += _rows(sub, key, set(sub.get("required", [])))
        else:
            out.append(f"| `{key}` | {_cell(_describe_type(sub))} | {_cell(sub.get('description', ''))} |")
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == CLI_PAGE:
        return markdown + "\n\n" + cli_reference()
    if page.file.src_uri == CONFIG_PAGE:
        return markdown + "\n\n" + config_reference()
    return markdown

"""The documentation site builds without a warning, its generated references cover every
command and every config key, and the README stays a front page."""

from __future__ import annotations

import argparse
import subprocess
import sys

import yaml

from conftest import REPO


def test_the_documentation_site_builds_strictly_with_generated_references(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cli = (tmp_path / "site/reference/cli/index.html").read_text()
    config = (tmp_path / "site/reference/configuration/index.html").read_text()
    from kdcg.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        assert f"kdcg {name}" in cli, name
        for action in command._actions:
            for flag in action.option_strings:
                assert flag in cli, (name, flag)
    from importlib.resources import files

    schema = yaml.safe_load(files("kdcg").joinpath("config.schema.yaml").read_text())

    def keys(node, path=""):
        for key, sub_schema in node.get("properties", {}).items():
            name = f"{path}.{key}" if path else key
            yield name
            yield from keys(sub_schema, name)

    missing = [k for k in keys(schema) if f"<code>{k}</code>" not in config]
    assert not missing, missing


def test_the_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200, len(lines)
    text = "\n".join(lines)
    for must in ("make run", "make test", "config/paper.yaml", "results/", "Citations", "mkdocs"):
        assert must in text, must

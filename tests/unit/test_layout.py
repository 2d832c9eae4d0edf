"""The house: the documentation site builds without a warning and its generated references
cover every command and config key, the README stays a front page, and the package's stages
import only earlier ones."""

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


def test_no_stage_imports_a_later_one_and_the_top_imports_no_stage_but_for_config():
    """The package's stages in pipeline order; every kdcg import in every module (lazy ones in
    functions included) goes to the top level, its own stage or an earlier one."""
    import ast

    order = ["aa", "cg", "models", "training", "md", "analysis", "report"]
    src = REPO / "workflow" / "src" / "kdcg"
    allowed_at_top = {"config": {"aa"}, "cli": set(order)}  # check-config reads the system; the CLI runs every stage
    bad = []
    for path in src.rglob("*.py"):
        parts = path.relative_to(src).parts
        stage = parts[0] if len(parts) > 1 else None
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("kdcg"):
                targets = [node.module] if node.module != "kdcg" else [f"kdcg.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("kdcg")]
            else:
                continue
            assert not (isinstance(node, ast.ImportFrom) and node.level), f"{path}: relative import across the package"
            for target in targets:
                pieces = target.split(".")
                other = pieces[1] if len(pieces) > 1 and pieces[1] in order else None
                if other is None:
                    continue
                if stage is None:
                    if other not in allowed_at_top.get(path.stem, set()):
                        bad.append(f"{path.relative_to(src)} imports {target}")
                elif order.index(other) > order.index(stage):
                    bad.append(f"{path.relative_to(src)} imports {target}")
    assert not bad, bad

"""Shared fixtures. Tests call the real tools: GROMACS, Packmol, Snakemake, MDAnalysis."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "config" / "tiny.yaml"
sys.path.insert(0, str(REPO / "workflow" / "src"))


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def tiny_config() -> dict:
    config = yaml.safe_load(TINY.read_text())
    for mol in config["system"]["molecules"]:  # absolute, so tests may run anywhere
        mol["itp"] = str(REPO / mol["itp"])
        mol["structure"] = str(REPO / mol["structure"])
    config["system"]["forcefield"] = str(REPO / config["system"]["forcefield"])
    return config


def kdcg(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the kdcg command line as a user would."""
    proc = subprocess.run([sys.executable, "-m", "kdcg", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"kdcg {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def venv_env() -> dict:
    """Environment whose PATH finds this interpreter's kdcg, snakemake and friends."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MPLBACKEND", "Agg")
    return env


def workflow_copy(dest: Path) -> Path:
    """A copy of the workflow (not of results/) to run Snakemake in isolation."""
    for name in ("Snakefile", "workflow", "config", "resources", "tests/config"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Snakemake run inside workdir, as a user in that folder would; output in .stdout + .stderr."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=venv_env(), cwd=workdir, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc

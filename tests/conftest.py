"""Shared fixtures. Tests call the real tools: GROMACS, Packmol, Snakemake, MDAnalysis."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "config" / "tiny.yaml"


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
    for name in ("Snakefile", "workflow", "envs", "config", "resources", "tests/config"):
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
    env = kw.pop("env", None) or venv_env()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def write_pair_dataset(path: Path, n_frames: int = 12, n_side: int = 3, edge_A: float = 16.0, seed: int = 0) -> Path:
    """A kdcg dataset of beads on a jittered cubic lattice (three species) whose forces come
    from a known soft pair repulsion, so that a model has something real to learn."""
    import json

    import numpy as np

    from kdcg.units import DATASET_UNITS

    rng = np.random.default_rng(seed)
    n = n_side ** 3
    grid = (np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * edge_A / n_side
    species = (np.arange(n) % 3) + 1
    R = np.empty((n_frames, n, 3))
    F = np.zeros_like(R)
    for k in range(n_frames):
        x = grid + rng.normal(0, 0.6, size=grid.shape)
        d = x[:, None] - x[None]
        d -= edge_A * np.round(d / edge_A)
        r = np.linalg.norm(d, axis=-1) + np.eye(n)
        mag = 40.0 * np.exp(-r / 1.5) * (1 - np.eye(n))  # kcal/mol/A, pointing apart
        F[k] = (mag[..., None] * d / r[..., None]).sum(1)
        R[k] = x % edge_A
    np.savez(path, R=R.astype(np.float32), F=F.astype(np.float32), Z=np.tile(species, (n_frames, 1)),
             cell=np.tile(np.eye(3) * edge_A, (n_frames, 1, 1)).astype(np.float32), masses=np.ones(n),
             time_ps=np.arange(n_frames, dtype=float), species_names=np.array(["A", "B", "C"]),
             bead_resid=np.arange(1, n + 1), bead_resname=np.array(["A", "B", "C"] * (n // 3)),
             units=json.dumps(DATASET_UNITS), source=json.dumps({"synthetic": True}))
    return path


SMALL_TRAINING_CONFIG = {
    "model": {"network": "HipnnQuad", "n_features": 8, "n_sensitivities": 6, "n_interaction_layers": 1, "n_atom_layers": 1,
              "dist_soft_min_A": 2.0, "dist_soft_max_A": 6.0, "dist_hard_max_A": 7.0},
    "prior": {"taper_estimator": "edge_fit", "rdf_threshold": 0.01, "rdf_bin_A": 0.1,
              "edge_fit_g_top": 0.5, "edge_fit_window_A": 1.5, "dr_A": 0.15, "fraction_at_taper": 0.05},
    "training": {"teacher_seeds": [1, 2], "student_variants": ["st_ei_faa", "se_ei_ft_faa"], "split_seed": 0, "split_mode": "blocks", "split_blocks": 6,
                 "valid_fraction": 0.17, "test_fraction": 0.17,
                 "learning_rate": 3e-3, "batch_size": 2, "eval_batch_size": 4, "max_epochs": 2,
                 "plateau_patience": 2, "plateau_factor": 0.5, "termination_patience": 10,
                 "min_improvement": 0.0, "models_per_job": 1, "hippynn_plots": False, "engine": "auto",
                 "train_eval_fraction": 0.25},
}


BEAD_MASSES_AMU = {1: 104.17, 2: 35.45, 3: 60.06}  # choline, chloride, urea beads


def write_md_dataset(folder: Path) -> Path:
    """The small synthetic dataset of the MD tests, with reline's bead masses."""
    import numpy as np

    write_pair_dataset(folder / "raw.npz", n_frames=12, n_side=3, edge_A=16.0)
    with np.load(folder / "raw.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["masses"] = np.array([BEAD_MASSES_AMU[int(s)] for s in arrays["Z"][0]])
    np.savez(folder / "dataset.npz", **arrays)
    return folder / "dataset.npz"


def process_state(pid: int) -> str:
    """The state letter Linux gives a process (R, S, T stopped, Z ...); "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def freeze_when(proc, predicate, watchdog_s: float) -> bool:
    """Stop ``proc``'s process group (SIGSTOP; started with start_new_session) once
    ``predicate()`` holds and check it again on the stopped process, so what the caller then
    kills is the state it asked for, however fast or slow the run goes. False when the process
    ends first or the watchdog passes (a hung run, not a timing the test depends on)."""
    end = time.monotonic() + watchdog_s
    while time.monotonic() < end and proc.poll() is None:
        if predicate():
            try:
                os.killpg(proc.pid, signal.SIGSTOP)
                while proc.poll() is None and process_state(proc.pid) not in ("T", "Z", ""):
                    time.sleep(0.01)  # the signal is delivered, not yet taken: wait until it has stopped
                if proc.poll() is None and predicate():
                    return True
                os.killpg(proc.pid, signal.SIGCONT)
            except ProcessLookupError:  # it ended meanwhile
                return False
        time.sleep(0.2)
    return False

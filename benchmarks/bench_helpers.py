"""What the benchmarks share: the reline frame they evaluate, kdcg models with random weights,
the timing helpers and the machine's description. Each benchmark imports this module; none
imports another benchmark."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def reline_edge_A(n_beads: int) -> float:
    """Edge (A) of a cubic box of n_beads at reline's density (200 beads in 26.22 A)."""
    return 26.22 * (n_beads / 200) ** (1 / 3)


def reline_frame(n_side: int = 10, edge_A: float = 44.84, seed: int = 0):
    """1,000 beads (250 Cho, 250 Cl, 500 urea) on a jittered lattice at the paper's density."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = n_side ** 3
    grid = (np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * edge_A / n_side
    species = rng.permutation(np.array([1] * (n // 4) + [2] * (n // 4) + [3] * (n - n // 2)))
    R = (grid + rng.normal(0, 0.4, grid.shape)) % edge_A
    return species, R, np.eye(3) * edge_A


def device_description(threads: int) -> str:
    """Where kdcg's models run in this process (kdcg.models.model_io.compute_device): the GPU's name, or the CPU."""
    import torch

    from kdcg.models.model_io import compute_device

    device = compute_device()
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"CPU, {threads} torch thread(s)"


def median_ms(fn, repeats: int) -> float:
    import torch

    def sync():  # CUDA runs asynchronously: time finished work only
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    fn()  # warm-up: numba kernels, allocator
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def save_random_models(cfg: dict, n_models: int, folder: Path, dataset: dict | None = None) -> list[Path]:
    import torch
    from hippynn.graphs import GraphModule

    from kdcg.models.model import build_model
    from kdcg.models.model_io import save_model

    import numpy as np

    from kdcg.provenance import dataset_fingerprint


    prior = {"taper_A": [[3.0] * 3] * 3, "strength_kcal_mol_A": 5.0, "dr_A": 0.15, "fraction_at_taper": 0.05,
             "species_names": ["Cho", "Cl", "urea"]}
    species, R, cell = reline_frame()
    # the one (made-up) dataset every member was "trained" on: an ensemble needs one dataset
    dataset = dataset or dataset_fingerprint({"R": R[None], "F": np.zeros_like(R)[None], "Z": species[None], "cell": cell[None],
                                   "species_names": np.array(prior["species_names"])})
    paths = []
    for k in range(1, n_models + 1):
        torch.manual_seed(k)
        m = build_model(cfg["model"], 3, prior)
        graph = GraphModule([m.species, m.positions, m.cells], [m.forces, m.bead_energies, m.energy])
        paths.append(folder / f"teacher-{k}" / "model.pt")
        save_model(graph, prior, cfg["model"], paths[-1], dataset=dataset)
    return paths


def bare_ms(model, species, R, cell, repeats: int) -> float:
    model(species, R, cell)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(species, R, cell)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def member_by_member_ensemble(member_paths: list[Path], out: Path) -> None:
    """The ensemble as kdcg built it before kdcg.models.stacked_members: each member's own modules,
    one after another, a backward pass each."""
    from kdcg.models.model import ensemble_graph
    from kdcg.models.model_io import load_model, save_model

    graphs, records = zip(*(load_model(p) for p in member_paths))
    graph = ensemble_graph(list(graphs), records[0]["prior"], records[0]["model_cfg"], stacked=False)
    save_model(graph, records[0]["prior"], records[0]["model_cfg"], out, dataset=records[0].get("dataset"))


def md_ms(model, species, R, cell, steps: int, timestep_fs: float) -> float:
    import numpy as np

    from kdcg.md import lammps_engine

    lmp = lammps_engine.lammps_instance(Path("none"))  # keeps torch's thread count (bare's)
    try:
        lammps_engine.create_system(lmp, species, {1: 104.17, 2: 35.45, 3: 60.06}, np.diag(cell), R)
        lmp.command("velocity all create 298.1 1234 mom yes rot no dist gaussian loop geom")
        lammps_engine.attach_model(lmp, model, species, cell, timestep_fs)
        lmp.command("fix nvt all nvt temp 298.1 298.1 100.0")
        lmp.command("run 5")  # set-up and warm-up
        t0 = time.perf_counter()
        lmp.command(f"run {steps} pre no post no")
        return 1000.0 * (time.perf_counter() - t0) / steps
    finally:
        lmp.close()


def study_teacher_training(n_frames: int, device, n_side: int = 6):
    """A teacher of config/study.yaml assembled for training as kdcg.training.train assembles it
    (hippynn's training modules, the padded pair table cached on the database), over n_frames
    synthetic frames of a reline-density box of n_side**3 beads (frame 0's species in every
    frame: the compiled and kernel paths are built for one system) with random forces
    (kcal/mol/A: timings do not depend on them). Returns a namespace of cfg, species, R, cell
    (frame 0's), F, prior, modules, info and database, the modules on ``device``."""
    from types import SimpleNamespace

    import numpy as np
    import torch
    import yaml
    from hippynn.databases import Database
    from hippynn.experiment.assembly import assemble_for_training

    from kdcg.models.model import build_model
    from kdcg.models.pairs import cache_training_pairs
    from kdcg.training.losses import student_loss
    from kdcg.training.train import database_arrays
    from kdcg.variants import get_variant

    cfg = yaml.safe_load((REPO / "config" / "study.yaml").read_text())
    edge = reline_edge_A(n_side ** 3)
    frames = [reline_frame(n_side=n_side, edge_A=edge, seed=k) for k in range(n_frames)]
    species = frames[0][0]
    R = np.stack([f[1] for f in frames])
    F = np.random.default_rng(0).normal(size=R.shape)
    data = {"Z": np.stack([species] * n_frames), "R": R, "cell": np.stack([f[2] for f in frames]), "F": F}
    prior = {"taper_A": [[3.0] * 3] * 3, "strength_kcal_mol_A": 5.0, "dr_A": 0.15, "fraction_at_taper": 0.05}
    torch.manual_seed(0)
    m = build_model(cfg["model"], 3, prior)
    total, _ = student_loss(m, get_variant("teacher"), R.shape[1])
    modules, info = assemble_for_training(total, {"TotalLoss": total})
    database = Database(database_arrays(data, None), seed=0, quiet=True, pin_memory=False, **info)
    database.make_explicit_split("train", torch.arange(n_frames))
    cache_training_pairs(modules.model, database, device, cfg["model"]["dist_hard_max_A"])
    modules, info = assemble_for_training(total, {"TotalLoss": total})
    database.inputs = info["inputs"]  # the pair indices the cache added
    modules.model.to(device), modules.loss.to(device)
    return SimpleNamespace(cfg=cfg, species=species, R=R, cell=frames[0][2], F=F, prior=prior, modules=modules,
                           info=info, database=database)

"""The paper config's cost per stage on this machine's CPU, from measurements made here (prints a
table; asserts nothing).

Measured in this process, one after another:
  - GROMACS: the paper's box (250 choline, 250 chloride, 500 urea; 44.84 A) packed by Packmol,
    50 steps of minimisation, then 2 ps of NVT with the paper's .mdp (1.6 nm, LJ-PME): ns/day;
  - training: one optimiser step on a batch of the paper's size (4 frames of 1,000 beads, the
    paper's HIP-NN-TS), ms per frame, through hippynn's graph: the engine training.engine gives
    HIP-NN-TS (the numba kernels train only the one-layer scalar Hipnn; printed); an epoch also evaluates the validation split and
    training.train_eval_fraction of the training split (at the labels' cost per frame);
  - labels: one evaluation per frame, ms;
  - CG MD: ms per LAMMPS step of one model and of the 8-teacher ensemble (benchmarks/md.py),
    through the force engine md.engine gives a job of the paper's length (auto: compiled on a CPU).
Then the counts of config/paper.yaml turn them into wall hours per job (at the threads used here)
and core-hours per stage; where PyTorch sees a GPU, the model stages are priced in GPU-hours (one
GPU per job) and --gromacs-ns-day gives the all-atom rate measured elsewhere (a GPU node may
have no gmx). Training is priced at its cap (max_epochs, no early stop): an upper
bound. The last lines say how many resumes the longest job needs under a 48 h limit.

    .venv/bin/python benchmarks/paper_cost.py [--threads 2] [--gromacs-ns-day 5.26] [--engine eager]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LIMIT_H = 48.0


def gromacs_ns_per_day(cfg: dict, folder: Path, threads: int) -> float:
    import copy

    from kdcg.aa import gromacs
    from kdcg.aa import system

    cfg = copy.deepcopy(cfg)
    cfg["aa_md"].update(em_max_steps=50, equilibration_ps=2.0)
    top = system.write_topology(cfg, folder / "topol.top", REPO)
    gro = system.pack_box(cfg, folder / "box.gro", REPO)
    gromacs.run_stage("em", cfg, gro, top, folder / "em", threads=threads)
    rec = gromacs.run_stage("nvt_equil", cfg, folder / "em" / "em.gro", top, folder / "nvt", threads=threads)
    return float(rec["ns_per_day"])


def training_ms_per_frame(cfg: dict, repeats: int = 5) -> tuple[float, float, str]:
    """(training ms per frame through hippynn's graph, evaluation ms per frame, the training
    engine config's training.engine resolves to for this network and device)."""
    import numpy as np
    import torch
    from hippynn.graphs import GraphModule
    from bench_helpers import median_ms
    from bench_helpers import reline_frame

    from kdcg.models.model import build_model
    from kdcg.models.model_io import compute_device
    from kdcg.training.kernel_graph import training_engine

    device = compute_device()
    species, R, cell = reline_frame()
    prior = {"taper_A": [[3.0] * 3] * 3, "strength_kcal_mol_A": 5.0, "dr_A": 0.15, "fraction_at_taper": 0.05}
    torch.manual_seed(0)
    m = build_model(cfg["model"], 3, prior)
    graph = GraphModule([m.species, m.positions, m.cells], [m.forces, m.energy]).to(device)
    b = cfg["training"]["batch_size"]
    Z = torch.as_tensor(np.tile(species, (b, 1))).to(device)
    X = torch.as_tensor(np.tile(R, (b, 1, 1)), dtype=torch.float32).to(device)
    C = torch.as_tensor(np.tile(cell, (b, 1, 1)), dtype=torch.float32).to(device)
    opt = torch.optim.Adam(graph.parameters(), lr=1e-4)

    def step():
        opt.zero_grad()
        forces, _ = graph(Z, X, C)
        ((forces ** 2).mean().sqrt() + forces.abs().mean()).backward()
        opt.step()

    train = median_ms(step, repeats) / b
    evaluate = median_ms(lambda: graph(Z[:1], X[:1], C[:1]), repeats)  # forces included: what labelling pays
    return train, evaluate, training_engine(cfg["training"]["engine"], graph, device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20, help="MD steps timed per model")
    ap.add_argument("--engine", choices=["auto", "eager", "compiled"],
                    help="md.engine for the MD rows (default: config/paper.yaml's)")
    ap.add_argument("--gromacs-ns-day", type=float, help="all-atom rate measured elsewhere (skips GROMACS here)")
    args = ap.parse_args()

    import torch
    import yaml
    from hippynn import settings
    from bench_helpers import md_ms, save_random_models
    from bench_helpers import reline_frame

    from kdcg.models import ensemble
    from kdcg.models.compiled_forces import open_model_forces

    settings.WARN_LOW_DISTANCES = False
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    t = args.threads
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ns_day = args.gromacs_ns_day or gromacs_ns_per_day(cfg, tmp / "aa", t)
        train_ms, eval_ms, train_engine = training_ms_per_frame(cfg)
        species, R, cell = reline_frame()
        paths = save_random_models(cfg, 8, tmp / "models")
        ensemble.build_ensemble(paths, tmp / "ensemble" / "model.pt")
        mdc = cfg["md"]
        if args.engine:
            mdc["engine"] = args.engine
        md_steps = round((mdc["equilibration_ps"] + mdc["n_samples"] * mdc["sample_interval_ps"]) * 1000 / mdc["timestep_fs"])

        def md_model(path):
            """The force engine a paper-length MD job gets (md.engine: auto picks by device and length)."""
            model = open_model_forces(path, mdc["engine"], steps=md_steps)
            model.set_pair_skin(mdc["pair_skin_A"])
            return model

        one = md_model(paths[0])
        engine = type(one).__name__
        step_one = md_ms(one, species, R, cell, args.steps, mdc["timestep_fs"])
        step_ens = md_ms(md_model(tmp / "ensemble" / "model.pt"), species, R, cell, args.steps, mdc["timestep_fs"])

    aa, tr = cfg["aa_md"], cfg["training"]
    n_teachers = len(tr["teacher_seeds"])
    n_students = 3 * n_teachers + 6
    n_frames = round(aa["production_ps"] / aa["output_interval_ps"])
    n_train = round(n_frames * (1 - tr["valid_fraction"] - tr["test_fraction"]))
    # an epoch: an optimiser step per training frame, then the validation split and the
    # train_eval_fraction of the training split evaluated for the loss curves
    n_evaluated = round(n_frames * tr["valid_fraction"]) + max(1, int(n_train * tr["train_eval_fraction"]))
    epoch_ms = n_train * train_ms + n_evaluated * eval_ms
    from bench_helpers import device_description

    from kdcg.models.model_io import compute_device

    # a model job holds `t` cores, or one GPU where there is one
    model_unit, model_per_job = ("GPU-h", 1) if compute_device().type == "cuda" else ("core-h", t)
    # (stage, jobs, wall hours per job, unit, units held per job)
    rows = [
        ("AA NVT equilibration", 1, aa["equilibration_ps"] / 1000 / ns_day * 24, "core-h", t),
        ("AA NVT production", 1, aa["production_ps"] / 1000 / ns_day * 24, "core-h", t),
        ("teacher training (cap)", n_teachers, tr["max_epochs"] * epoch_ms / 3.6e6, model_unit, model_per_job),
        ("teacher labels", n_teachers, n_frames * eval_ms / 3.6e6, model_unit, model_per_job),
        ("student training (cap)", n_students, tr["max_epochs"] * epoch_ms / 3.6e6, model_unit, model_per_job),
        ("CG MD, one model", (n_teachers + n_students) * mdc["replicas"], md_steps * step_one / 3.6e6, model_unit,
         model_per_job),
        ("CG MD, ensemble", mdc["replicas"], md_steps * step_ens / 3.6e6, model_unit, model_per_job),
    ]

    print(f"config/paper.yaml on this machine ({device_description(t)}; GROMACS on {t} CPU threads), measured: GROMACS {ns_day:.2f} ns/day; "
          f"training {train_ms:.0f} ms/frame through hippynn's graph (training.engine: {cfg['training']['engine']} "
          f"-> {train_engine}{'; the kernels are faster, so this is an upper bound' if train_engine == 'kernels' else ''}); evaluation {eval_ms:.0f} ms/frame (an epoch {epoch_ms / 1000:.0f} s: "
          f"{n_train} frames trained, {n_evaluated} evaluated); MD ({engine}, md.engine: {mdc['engine']}) "
          f"{step_one:.0f} ms/step one model, {step_ens:.0f} ms/step ensemble")
    print(f"{'stage':<24} {'jobs':>5} {'h per job':>10} {'total':>10} {'unit':>7} {'48 h resumes':>13}")
    totals: dict[str, float] = {}
    for stage, jobs, hours, unit, per_job in rows:
        amount = jobs * hours * per_job
        totals[unit] = totals.get(unit, 0.0) + amount
        print(f"{stage:<24} {jobs:>5} {hours:10.2f} {amount:10.1f} {unit:>7} {max(0, math.ceil(hours / LIMIT_H) - 1):>13}")
    print("total: " + ", ".join(f"{amount:,.1f} {unit}" for unit, amount in totals.items()))
    longest = max(rows, key=lambda r: r[2])
    print(f"longest job: {longest[0]}, {longest[2]:.0f} h at {t} threads: {math.ceil(longest[2] / LIMIT_H)} submissions "
          f"of <= {LIMIT_H:.0f} h (Slurm retries >= {math.ceil(longest[2] / LIMIT_H) - 1}), each resuming from its checkpoint")


if __name__ == "__main__":
    main()

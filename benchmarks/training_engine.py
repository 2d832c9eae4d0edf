"""Training through hippynn's graph against training through kdcg's numba pair kernels
(``training.engine`` hippynn / kernels), side by side (prints figures; asserts nothing).

One teacher of a config's model and training sections (default: config/study.yaml, the study's
scalar network) is trained --epochs epochs by each engine from the same seed, the engines
alternating over --rounds after a warm-up of each (numba's and hippynn's first-call compilation
is not counted); each training in its own folder, on --threads threads. Prints per engine the
median seconds per epoch (train_seconds / epochs, set-up and the held-out test excluded), the
whole job's median wall seconds, the ratios, and the largest relative difference of the
validation losses between the engines (float32 drift, not a different training).

The frames: --dataset and --prior of a finished run (`make run` writes results/cg/dataset.npz
and results/models/prior.json), or without them a synthetic box of --beads reline beads on a
jittered lattice at reline's density, with random mapped forces.

    .venv/bin/python benchmarks/training_engine.py [--config config/study.yaml] [--epochs 8]
        [--rounds 2] [--threads 2] [--dataset D --prior P | --beads 216 --frames 200]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_helpers import cpu_name, reline_edge_A, reline_frame  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "src"))


def synthetic_dataset(folder: Path, n_beads: int, n_frames: int, cfg: dict) -> tuple[Path, Path]:
    """Frames of one box of reline's beads on a jittered lattice at reline's density
    (bench_helpers.reline_frame; the first frame's species in every frame), random mapped
    forces (kcal/mol/A: the timing does not depend on them), the prior fitted as the workflow does."""
    from kdcg.models.prior import write_prior
    from kdcg.units import DATASET_UNITS

    n_side = round(n_beads ** (1 / 3))
    n = n_side ** 3
    edge = reline_edge_A(n)
    frames = [reline_frame(n_side=n_side, edge_A=edge, seed=k) for k in range(n_frames)]
    species = frames[0][0]
    dataset = folder / "dataset.npz"
    np.savez(dataset, R=np.stack([f[1] for f in frames]).astype(np.float32),
             F=np.random.default_rng(0).normal(size=(n_frames, n, 3)).astype(np.float32),
             Z=np.tile(species, (n_frames, 1)), cell=np.tile(np.eye(3) * edge, (n_frames, 1, 1)).astype(np.float32),
             masses=np.ones(n), time_ps=np.arange(n_frames, dtype=float), species_names=np.array(["Cho", "Cl", "Urea"]),
             bead_resid=np.arange(1, n + 1), bead_resname=np.array(["Cho", "Cl", "Urea"])[species - 1],
             units=json.dumps(DATASET_UNITS), source=json.dumps({"synthetic": True}))
    prior = folder / "prior.json"
    write_prior(dataset, cfg, prior)
    return dataset, prior


def main() -> None:
    import torch
    import yaml

    from kdcg.config import read_yaml
    from kdcg.training.train import train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "config" / "study.yaml"))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dataset")
    ap.add_argument("--prior")
    ap.add_argument("--beads", type=int, default=216)
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    cfg = read_yaml(args.config)  # the model and training sections only: not validated against the files
    cfg["training"].update(max_epochs=args.epochs, termination_patience=10 * args.epochs, hippynn_plots=False)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.dataset:
            dataset, prior = Path(args.dataset), Path(args.prior)
        else:
            dataset, prior = synthetic_dataset(tmp, args.beads, args.frames, cfg)
        per_epoch = {"hippynn": [], "kernels": []}
        job = {"hippynn": [], "kernels": []}
        histories = {}
        for r in range(args.rounds + 1):  # round 0: warm-up, not counted
            for engine in (("hippynn", "kernels") if r % 2 == 0 else ("kernels", "hippynn")):
                run_cfg = copy.deepcopy(cfg)
                run_cfg["training"]["engine"] = engine
                t0 = time.perf_counter()
                metrics = train("teacher", 1, dataset, prior, tmp / f"{engine}-{r}", run_cfg, threads=args.threads)
                seconds = time.perf_counter() - t0
                if r == 0:
                    continue
                per_epoch[engine].append(metrics["train_seconds"] / metrics["epochs"])
                job[engine].append(seconds)
                histories[engine] = [h["valid"] for h in metrics["loss_history"]]
                print(f"[bench] round {r} of {args.rounds}: {engine} {per_epoch[engine][-1]:.3f} s/epoch, "
                      f"job {seconds:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in per_epoch.items()}
    med_job = {k: statistics.median(v) for k, v in job.items()}
    drift = max(abs(a - b) / abs(b) for a, b in zip(histories["kernels"], histories["hippynn"]))
    n_frames = int(np.load(dataset)["R"].shape[0]) if args.dataset else args.frames
    print(f"machine: {cpu_name()} ({platform.machine()}), {args.threads} threads; torch {torch.__version__}")
    print(f"config: {args.config} (model.network {cfg['model']['network']}, batch {cfg['training']['batch_size']}); "
          f"{n_frames} frames; {args.epochs} epochs x {args.rounds} rounds, medians")
    print(f"seconds per epoch: hippynn {med['hippynn']:.3f}, kernels {med['kernels']:.3f}")
    print(f"job wall seconds: hippynn {med_job['hippynn']:.1f}, kernels {med_job['kernels']:.1f}")
    print(f"speedup per epoch: {med['hippynn'] / med['kernels']:.2f}")
    print(f"speedup per job: {med_job['hippynn'] / med_job['kernels']:.2f}")
    print(f"validation loss, largest relative difference between engines: {drift:.2e}")


if __name__ == "__main__":
    main()

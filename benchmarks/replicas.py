"""Throughput of CG MD replicas run together (one batched model evaluation per step, one LAMMPS
instance per thread; kdcg.md.replica_batch) against the same replicas one after another (prints
figures; asserts nothing).

8 replicas of a reline-density box (default 216 beads, 26.90 A; the default and study systems
have 200; --beads 1000 is the paper's 44.84 A box) with a model of the given config's size
(random weights: speed does not depend on them), NVT at --timestep-fs, in one process, side by
side: aggregate MD steps per second and ns/day both ways. Goals: on a 2-core machine together
>= 1.3 x one after another; on one GPU, 8 x 1,000 beads with the paper's model >= 20 ns/day in
aggregate at 1 fs.

    .venv/bin/python benchmarks/replicas.py [--config config/config.yaml] [--replicas 8] [--ps 0.4]
        [--beads 216] [--timestep-fs 2] [--model results-study/models/teacher-1/model.pt
        --dataset results-study/cg/dataset.npz] [--engine eager|compiled] [--rounds 1]

"steady steps/s" leaves out each replica's set-up and the compiled engine's warm-up (its first
evaluation), which "wall s" includes.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_dataset(path: Path, n_frames: int = 8, n_side: int = 6) -> None:
    """Jittered-lattice frames of n_side**3 beads in kdcg's dataset format (reline's bead masses
    and density: 200 beads in 26.22 A)."""
    import numpy as np

    from kdcg.units import DATASET_UNITS
    from bench_helpers import reline_edge_A, reline_frame

    edge = reline_edge_A(n_side ** 3)
    frames = [reline_frame(n_side=n_side, edge_A=edge, seed=k) for k in range(n_frames)]
    species = frames[0][0]
    R = np.stack([f[1] for f in frames])
    np.savez(path, R=R, F=np.zeros_like(R), Z=np.tile(species, (n_frames, 1)), cell=np.stack([f[2] for f in frames]),
             masses=np.array([{1: 104.17, 2: 35.45, 3: 60.06}[int(s)] for s in species]),
             species_names=np.array(["Cho", "Cl", "urea"]), units=json.dumps(DATASET_UNITS))


@contextlib.contextmanager
def hippynn_pair_search():
    """kdcg's Verlet list with hippynn's pair search and filter (kdcg before 2026-11-26)."""
    from hippynn.layers.pairs.dispatch import KDTreeNeighbors, KDTreePairsMemory

    from kdcg.models.pairs import VerletPairs

    saved = VerletPairs._pair_indexer_class, VerletPairs.forward
    VerletPairs._pair_indexer_class, VerletPairs.forward = KDTreeNeighbors, KDTreePairsMemory.forward
    try:
        yield
    finally:
        VerletPairs._pair_indexer_class, VerletPairs.forward = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--ps", type=float, default=0.4, help="CG MD per replica (ps)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beads", type=int, default=216, help="beads per replica, rounded to a cube (216, 1000, ...)")
    ap.add_argument("--timestep-fs", type=float, default=2.0)
    ap.add_argument("--model", help="a trained kdcg model.pt instead of random weights (needs --dataset)")
    ap.add_argument("--dataset", help="the model's CG dataset .npz: replicas start from its frames")
    ap.add_argument("--rounds", type=int, default=1, help="rounds over the modes, in alternating order (medians)")
    ap.add_argument("--engine", choices=("eager", "compiled"), default="eager",
                    help="md.engine of every mode (the config's auto would choose eager for runs this short); "
                         "compiled drops the mode with hippynn's pair search, which only the eager engine uses")
    args = ap.parse_args()
    n_side = round(args.beads ** (1 / 3))
    from kdcg.cli import limit_threads

    limit_threads(args.threads)  # every pool of the job, as `kdcg md --threads` holds them

    import yaml
    from hippynn import settings
    from bench_helpers import save_random_models

    from kdcg.md import replicas as md

    settings.WARN_LOW_DISTANCES = False
    cfg = yaml.safe_load(Path(args.config).read_text())
    md_cfg = dict(cfg["md"], engine=args.engine, timestep_fs=args.timestep_fs, equilibration_ps=0.0, n_samples=1,
                  sample_interval_ps=args.ps, thermo_interval_steps=50, restart_interval_steps=10 ** 6,
                  max_energy_drift_per_bead_kcal_mol=1e6, max_energy_per_bead_kcal_mol=1e6, min_distance_A=0.5,
                  max_temperature_K=1e5)
    run_cfg = {"system": cfg["system"], "md": md_cfg}
    replicas = list(range(1, args.replicas + 1))
    steps = round(args.ps * 1000 / md_cfg["timestep_fs"]) * len(replicas)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from kdcg.cg.mapping import load_dataset
        from kdcg.provenance import dataset_fingerprint

        if args.model:
            model, dataset = Path(args.model).resolve(), Path(args.dataset).resolve()
        else:
            dataset = tmp / "dataset.npz"
            write_dataset(dataset, n_side=n_side)
            model = save_random_models(cfg, 1, tmp, dataset_fingerprint(load_dataset(dataset)))[0]
        n_beads = len(load_dataset(dataset)["R"][0])
        modes = (("one after another", False, contextlib.nullcontext), ("together", True, contextlib.nullcontext),
                 ("together, hippynn's pairs", True, hippynn_pair_search))[: 3 if args.engine == "eager" else 2]
        runs = {label: [] for label, _, _ in modes}  # (wall s, steps/s, steady steps/s, unstable) per round
        order = list(enumerate(modes))
        for k in range(args.rounds):
            # alternating order: a machine that slows or speeds up during the run favours no mode
            for i, (label, together, pair_path) in (order if k % 2 == 0 else order[::-1]):
                run_cfg["md"]["evaluate_replicas_together"] = together
                t0 = time.perf_counter()
                with pair_path():
                    results = md.run_replicas(model, dataset, run_cfg, replicas, tmp / f"mode-{i}-round-{k}",
                                              threads=args.threads)
                wall = time.perf_counter() - t0
                n_unstable = sum(r["status"] != "stable" for r in results)
                # steps over the timed chunks only, without set-up and the compiled engine's warm-up; a
                # replica's ms per step is the whole batch's step when they advance together
                ms = [r["ms_per_step"] or float("nan") for r in results]  # None: ended before a timed chunk
                per_step_ms = sum(ms) if not together or any(m != m for m in ms) else max(ms)  # NaN stays NaN
                runs[label].append((wall, steps / wall, len(replicas) / (per_step_ms / 1000.0), n_unstable))
        rows = {label: tuple(statistics.median(r[j] for r in rounds) for j in range(3)) + (max(r[3] for r in rounds),)
                for label, rounds in runs.items()}
        steady_ratios = [b[2] / a[2] for a, b in zip(runs["one after another"], runs["together"])]
        same = args.engine == "eager" and all(
            filecmp.cmp(tmp / "mode-1-round-0" / f"replica-{r}" / name, tmp / "mode-2-round-0" / f"replica-{r}" / name,
                        shallow=False)
            for r in replicas for name in ("trajectory.lammpstrj", "thermo.csv"))
    from bench_helpers import device_description

    m = cfg["model"]
    print(f"{device_description(args.threads)}: {args.replicas} replicas x {n_beads} beads x {args.ps} ps at "
          f"{args.timestep_fs:g} fs; model {m.get('network', 'HipnnQuad')} "
          f"{m['n_features']} features, cutoff {m['dist_hard_max_A']} A ({args.model or 'random weights'}); "
          f"{args.threads} torch threads; {args.engine} engine")
    print(f"medians of {args.rounds} round(s), the modes' order alternating")
    print(f"{'mode':<26} {'wall s':>8} {'steps/s (all)':>14} {'ns/day (all)':>13} {'steady steps/s':>15} "
          f"{'unstable':>9}")
    for label, (wall, rate, steady, bad) in rows.items():
        print(f"{label:<26} {wall:8.1f} {rate:14.1f} {rate * args.timestep_fs * 1e-6 * 86400:13.3f} {steady:15.1f} "
              f"{bad:>9}")
    ratio = rows["together"][1] / rows["one after another"][1]
    each = ", ".join(f"{r:.2f}" for r in steady_ratios)
    print(f"together / one after another: {ratio:.2f} x the throughput (goal >= 1.3); steady: "
          f"{statistics.median(steady_ratios):.2f} x (median; the rounds: {each})")
    if args.engine != "eager":
        return
    pair_ratio = rows["together"][1] / rows["together, hippynn's pairs"][1]
    print(f"together, kdcg's pairs / hippynn's: {pair_ratio:.2f} x the "
          f"throughput; the same trajectories and thermo to the last bit: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()

"""Training and inference figures of the CG model on this machine (prints them; asserts nothing).

For a reline-density frame (1,000 beads in a 44.84 A box unless --beads says otherwise) at the
config's model size and cutoff:
  - hippynn's CPU kernels side by side: numba (kdcg's on a CPU) against its plain pytorch
    implementation (uncompiled, as kdcg.models.hippynn_import leaves it): ms per energy + force
    evaluation (pair finding included) of one frame and of 4 frames, and ms per training step
    (forces loss, Adam) on 4 frames; each kernel in its own process with every thread pool held
    to --threads, the two alternating --rounds times, medians;
  - training throughput (frames/s) and peak memory per frame, for several batch sizes.

    .venv/bin/python benchmarks/training.py [--config config/paper.yaml] [--beads 1000] [--batches 1 2 4 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_helpers import reline_edge_A, reline_frame  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KERNELS = ("numba", "pytorch")


def worker(args) -> dict:
    """Runs in a child process: one kernel setting, one measurement kind."""
    import resource
    import time

    import numpy as np
    import torch
    import yaml

    from kdcg.models.model import build_model

    torch.set_num_threads(args.threads)
    import hippynn

    hippynn.custom_kernels.set_custom_kernels(args.kernels)
    cfg = yaml.safe_load(Path(args.config).read_text())
    n_side = round(args.beads ** (1 / 3))
    species, R, cell = reline_frame(n_side, reline_edge_A(n_side ** 3))
    prior = {"taper_A": [[3.0] * 3] * 3, "strength_kcal_mol_A": 5.0, "dr_A": 0.15, "fraction_at_taper": 0.05}
    torch.manual_seed(0)
    m = build_model(cfg["model"], 3, prior)
    from hippynn.graphs import GraphModule

    graph = GraphModule([m.species, m.positions, m.cells], [m.forces, m.energy])
    b = args.batch
    Z = torch.as_tensor(np.tile(species, (b, 1)))
    X = torch.as_tensor(np.tile(R, (b, 1, 1)), dtype=torch.float32)
    C = torch.as_tensor(np.tile(cell, (b, 1, 1)), dtype=torch.float32)
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.kind == "eval":
        for _ in range(2):  # warm up (numba compiles or loads its cache)
            graph(Z, X, C)
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            forces, energy = graph(Z, X, C)
            times.append(time.perf_counter() - t)
        return {"ms_per_eval": 1000 * float(np.median(times)), "pairs_per_frame": None}
    opt = torch.optim.Adam(graph.parameters(), lr=1e-4)
    target = torch.zeros_like(X)

    def step():
        opt.zero_grad()
        forces, _ = graph(Z, X, C)
        loss = ((forces - target) ** 2).mean().sqrt() + (forces - target).abs().mean()
        loss.backward()
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(args.repeats):
        step()
    elapsed = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"frames_per_s": b * args.repeats / elapsed, "peak_rss_mib": peak_kb / 1024,
            "peak_mib_per_frame": (peak_kb - base_kb) / 1024 / b}


def run_child(kind: str, kernels: str, batch: int, ns) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--batch", str(batch), "--config", ns.config,
           "--threads", str(ns.threads), "--repeats", str(ns.repeats), "--kernels", kernels, "--beads", str(ns.beads)]
    # every thread pool held to --threads, as `kdcg train --threads` holds a job's (numba's would take every core)
    env = dict(os.environ, **{v: str(ns.threads) for v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "config" / "paper.yaml"))
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="processes per kernel and measurement")
    p.add_argument("--beads", type=int, default=1000, help="rounded to a cube of a whole number")
    p.add_argument("--kernels", default="numba", help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=["eval", "train"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    ns = p.parse_args()
    if ns.worker:
        ns.kind = ns.worker
        print(json.dumps(worker(ns)))
        return
    n_beads = round(ns.beads ** (1 / 3)) ** 3
    print(f"model: {ns.config} | {n_beads} beads, {reline_edge_A(n_beads):.2f} A box | {ns.threads} threads\n")
    kinds = {"evaluation, 1 frame": ("eval", 1), "evaluation, 4 frames": ("eval", 4), "training step, 4 frames": ("train", 4)}
    times = {(what, k): [] for what in kinds for k in KERNELS}
    for _ in range(ns.rounds):
        for what, (kind, batch) in kinds.items():
            for k in KERNELS:
                r = run_child(kind, k, batch, ns)
                if "error" in r:
                    print(f"  {what}, kernels={k}: error: {r['error']}")
                    continue
                times[what, k].append(r["ms_per_eval"] if kind == "eval" else 1000 * batch / r["frames_per_s"])
    print(f"hippynn's CPU kernels, ms (median of {ns.rounds} processes each, alternating):")
    print(f"  {'':24s} {'numba':>8s} {'pytorch':>8s}  pytorch / numba")
    for what in kinds:
        a, b = (statistics.median(times[what, k]) if times[what, k] else float("nan") for k in KERNELS)
        print(f"  {what:24s} {a:8.1f} {b:8.1f}  {b / a:.2f}")
    print("\ntraining step (forces loss, Adam), numba kernels (kdcg's on a CPU):")
    print("  batch  frames/s  peak RSS MiB  MiB/frame")
    for b in ns.batches:
        r = run_child("train", "numba", b, ns)
        if "error" in r:
            print(f"  {b:5d}  error: {r['error']}")
        else:
            print(f"  {b:5d}  {r['frames_per_s']:8.2f}  {r['peak_rss_mib']:12.0f}  {r['peak_mib_per_frame']:9.0f}")


if __name__ == "__main__":
    main()

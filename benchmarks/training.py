"""Training and inference figures of the CG model on this machine (prints them; asserts nothing).

For a 1,000-bead reline-density frame (44.84 A box) at the paper's model size and cutoff:
  - one energy + force evaluation (pair finding included), ms, with and without hippynn's
    numba CPU kernels;
  - training throughput (frames/s) and peak memory per frame, for several batch sizes.
Each setting runs in its own process, side by side in one invocation, so ratios are fair.

    .venv/bin/python benchmarks/training.py [--config config/paper.yaml] [--batches 1 2 4 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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


def worker(args) -> dict:
    """Runs in a child process: one kernel setting, one measurement kind."""
    import resource
    import time

    import numpy as np
    import torch
    import yaml

    sys.path.insert(0, str(REPO / "workflow" / "src"))
    from kdcg.model import build_model

    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(Path(args.config).read_text())
    species, R, cell = reline_frame()
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
    env = dict(os.environ, HIPPYNN_USE_CUSTOM_KERNELS=kernels)
    cmd = [sys.executable, __file__, "--worker", kind, "--batch", str(batch), "--config", ns.config,
           "--threads", str(ns.threads), "--repeats", str(ns.repeats)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "config" / "paper.yaml"))
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--worker", choices=["eval", "train"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    ns = p.parse_args()
    if ns.worker:
        ns.kind = ns.worker
        print(json.dumps(worker(ns)))
        return
    print(f"model: {ns.config} | 1,000 beads, 44.84 A box | {ns.threads} threads\n")
    print("one energy + force evaluation (pair finding included):")
    evals = {k: run_child("eval", k, 1, ns) for k in ("numba", "False")}
    for k, r in evals.items():
        print(f"  kernels={k:<6} {r.get('ms_per_eval', float('nan')):8.1f} ms  {r.get('error', '')}")
    if all("ms_per_eval" in r for r in evals.values()):
        print(f"  numba speed-up: {evals['False']['ms_per_eval'] / evals['numba']['ms_per_eval']:.2f}x")
    print("\ntraining step (forces loss, Adam), numba kernels:")
    print("  batch  frames/s  peak RSS MiB  MiB/frame")
    for b in ns.batches:
        r = run_child("train", "numba", b, ns)
        if "error" in r:
            print(f"  {b:5d}  error: {r['error']}")
        else:
            print(f"  {b:5d}  {r['frames_per_s']:8.2f}  {r['peak_rss_mib']:12.0f}  {r['peak_mib_per_frame']:9.0f}")


if __name__ == "__main__":
    main()

"""The static-shape compiled engine (kdcg.models.compiled_forces) against today's eager path
(kdcg.models.model_forces.ModelForces), side by side in one process: rows alternate over rounds,
medians are printed, with the machine.

One evaluation = energies and forces of every frame, as an MD step asks for them, with the pair
list reused (a Verlet skin of 1 A and unchanged positions: the step between two rebuilds).

    python benchmarks/engine.py --threads 2

Prints ``speedup md_study`` (study network, 200 beads, 4 replicas evaluated together),
``speedup md_paper`` (paper network, 1,000 beads), ``speedup train_study`` and
``gflops md_paper``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_helpers import REPO, cpu_name, device_description, reline_edge_A, reline_frame, save_random_models


def peak_gflops(threads: int) -> float:
    """Single-precision peak of ``threads`` cores: 2.5 GHz x 2 FMA units x 16 float32 lanes x 2
    flops (AVX-512), the figure the engine issue quotes for this machine's cores."""
    return threads * 2.5 * 2 * 16 * 2


def network_flops(cfg: dict, n_beads: int, n_pairs: int) -> float:
    """Multiply-adds x 2 of one forward pass of the network on n_pairs listed pairs: the
    environment sums and the interaction and atom layers (the backward costs about twice)."""
    m = cfg["model"]
    components = {"Hipnn": 1, "HipnnVec": 4, "HipnnQuad": 9}[m["network"]]
    s, f = m["n_sensitivities"], m["n_features"]
    species = 3
    env = n_pairs * components * s * species
    interaction = n_beads * components * s * species * f
    atom_layers = n_beads * m["n_atom_layers"] * 2 * f * f
    return 2.0 * (env + interaction + atom_layers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import torch
    import yaml

    from kdcg.models.compiled_forces import CompiledModelForces
    from kdcg.models.model_forces import ModelForces

    torch.set_num_threads(args.threads)
    cases = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, config, n_side, n_frames in (("md_study", "study", 6, 4), ("md_paper", "paper", 10, 1)):
            cfg = yaml.safe_load((REPO / "config" / f"{config}.yaml").read_text())
            species, R, cell = reline_frame(n_side, reline_edge_A(n_side ** 3))
            rng = np.random.default_rng(1)
            frames = np.stack([R + rng.normal(0, 0.05, R.shape) for _ in range(n_frames)])
            (path,) = save_random_models(cfg, 1, Path(tmp) / name)
            eager = ModelForces(path, pair_skin_A=1.0)
            compiled = CompiledModelForces(path, pair_skin_A=1.0)
            t0 = time.perf_counter()
            compiled.evaluate_batch(species, frames, cell)
            warm_up_s = time.perf_counter() - t0
            cases[name] = dict(cfg=cfg, species=species, frames=frames, cell=cell, eager=eager, compiled=compiled,
                               warm_up_s=warm_up_s, times={"eager": [], "compiled": []})
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_} of {args.rounds}", file=sys.stderr, flush=True)
            for case in cases.values():
                for kind in ("eager", "compiled"):
                    model = case[kind]
                    model.evaluate_batch(case["species"], case["frames"], case["cell"])  # pair list built
                    times = []
                    for _ in range(args.repeats):
                        t = time.perf_counter()
                        model.evaluate_batch(case["species"], case["frames"], case["cell"])
                        times.append(time.perf_counter() - t)
                    case["times"][kind].append(1000 * statistics.median(times))

    print(f"engine benchmark: {cpu_name()}, {device_description(args.threads)}; medians of {args.rounds} alternating "
          f"rounds of {args.repeats} evaluations (energies + forces, pair list reused)")
    for name, case in cases.items():
        eager_ms = statistics.median(case["times"]["eager"])
        compiled_ms = statistics.median(case["times"]["compiled"])
        table = case["compiled"]._table
        print(f"  {name}: {len(case['frames'])} frame(s) x {len(case['species'])} beads, eager {eager_ms:.2f} ms, "
              f"compiled {compiled_ms:.2f} ms ({table.capacity} pair slots per bead; warm-up "
              f"{case['warm_up_s']:.1f} s, paid once per job)")
        case["ms"] = (eager_ms, compiled_ms)
    for name in cases:
        eager_ms, compiled_ms = cases[name]["ms"]
        print(f"speedup {name}: {eager_ms / compiled_ms:.2f}")
    print("speedup train_study: not measured (training runs through hippynn's eager graph; see docs/performance.md)")
    paper = cases["md_paper"]
    table = paper["compiled"]._table
    listed = int((table.offset_A[..., 0] != 2 * (table.cutoff_A + table.skin_A)).sum())
    flops = 3 * network_flops(paper["cfg"], len(paper["species"]), listed)  # forward + backward ~ 3 forwards
    print(f"gflops md_paper: {flops / (paper['ms'][1] * 1e6):.1f} of {peak_gflops(args.threads):.0f} peak "
          f"(network arithmetic of the listed pairs; compiled path)")


if __name__ == "__main__":
    main()

"""The compiled engine's force code (kdcg.models.dense_network.AnalyticForces) at an earlier git
revision against the working tree's, with the eager path beside them: side by side in one
process, alternating rounds, medians (prints figures; asserts nothing).

    .venv/bin/python benchmarks/engine_revisions.py --rev 862dd46 [--threads 2]

The earlier module is read with ``git show REV:workflow/src/kdcg/models/dense_network.py`` and
imported beside the installed one; both are compiled by torch.compile at the shapes of
benchmarks/engine.py (study network: 4 frames x 216 beads; paper network: 1 frame x 1,000).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_helpers import REPO, cpu_name, device_description, reline_edge_A, reline_frame, save_random_models


def module_at(rev: str, folder: Path):
    source = subprocess.run(["git", "show", f"{rev}:workflow/src/kdcg/models/dense_network.py"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout
    path = folder / "dense_network_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("dense_network_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", required=True, help="the git revision to compare with the working tree")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--networks", nargs="+", choices=["study", "paper"], default=["study", "paper"])
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: the process's CPU time, steadier than wall time where other jobs share the "
                         "machine (with --threads 1; more threads count their spin-waits)")
    args = ap.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    import numpy as np
    import torch
    import yaml

    import kdcg.models.dense_network as current
    from kdcg.models.compiled_forces import CompiledModelForces
    from kdcg.models.model_forces import ModelForces

    torch.set_num_threads(args.threads)
    print(f"engine at {args.rev} against the working tree: {cpu_name()}, {device_description(args.threads)}; "
          f"medians of {args.rounds} alternating rounds of {args.repeats} evaluations, {args.clock} time")
    with tempfile.TemporaryDirectory() as tmp:
        earlier = module_at(args.rev, Path(tmp))
        for name, n_side, n_frames in (("study", 6, 4), ("paper", 10, 1)):
            if name not in args.networks:
                continue
            cfg = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
            species, R, cell = reline_frame(n_side, reline_edge_A(n_side ** 3))
            rng = np.random.default_rng(1)
            frames = np.stack([R + rng.normal(0, 0.05, R.shape) for _ in range(n_frames)])
            (path,) = save_random_models(cfg, 1, Path(tmp) / name)
            engines = {}
            working_tree = current.AnalyticForces
            try:
                for label, forces_class in ((args.rev, earlier.AnalyticForces), ("working tree", working_tree)):
                    current.AnalyticForces = forces_class  # CompiledModelForces builds the class it finds here
                    engine = CompiledModelForces(path, pair_skin_A=1.0)
                    engine.evaluate_batch(species, frames, cell)  # compiled here, at these shapes
                    engines[label] = engine
            finally:
                current.AnalyticForces = working_tree
            engines["eager"] = ModelForces(path, pair_skin_A=1.0)
            results = {k: e.evaluate_batch(species, frames, cell) for k, e in engines.items()}
            largest = max(float(np.abs(a.forces_kcal_mol_A - b.forces_kcal_mol_A).max())
                          for a, b in zip(results[args.rev], results["working tree"]))
            times = {k: [] for k in engines}
            for _ in range(args.rounds):
                for k, engine in engines.items():
                    ts = []
                    for _ in range(args.repeats):
                        t0 = clock()
                        engine.evaluate_batch(species, frames, cell)
                        ts.append(clock() - t0)
                    times[k].append(1000 * statistics.median(ts))
            ms = {k: statistics.median(v) for k, v in times.items()}
            print(f"  {name} network, {n_frames} frame(s) x {len(species)} beads: compiled at {args.rev} "
                  f"{ms[args.rev]:.2f} ms, working tree {ms['working tree']:.2f} ms, eager {ms['eager']:.2f} ms; "
                  f"speedup over eager {ms['eager'] / ms[args.rev]:.2f} -> {ms['eager'] / ms['working tree']:.2f}; "
                  f"largest force difference {largest:.1e} kcal/mol/A")


if __name__ == "__main__":
    sys.exit(main())

"""What an MD evaluation of a stacked ensemble costs against one of its members, by ensemble size
(prints figures; asserts nothing). Prices an ensemble's CG MD job from a measured one of another
size (docs/study.md: the ensemble of 8 from the sixth pilot run's ensemble of 4).

Trained members (--models; repeated in turn when fewer than the largest --sizes) are stacked by
kdcg.models.ensemble.build_ensemble; each model is opened as an MD job opens it
(kdcg.models.compiled_forces.open_model_forces, md.engine auto for a job of --steps steps) and
evaluated on 4 frames of the dataset together (the study's replicas per job), the pair list
reused (frames moved by 0.002 A). Every thread pool (PyTorch, numba, BLAS) holds --threads, as
`kdcg md --threads` does. Rounds alternate over the models; medians.

    .venv/bin/python benchmarks/ensemble_cost.py --models results-pilot-rerun/models/teacher-{1,2,3,4}/model.pt \
        --dataset results-pilot-rerun/cg/dataset.npz [--sizes 4 8] [--threads 1] [--rounds 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "src"))

from bench_helpers import cpu_name  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True, help="trained members' model.pt")
    ap.add_argument("--dataset", required=True, help="their CG dataset.npz")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 8], help="ensemble sizes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--steps", type=int, default=60_000, help="MD steps the job would run (md.engine auto)")
    args = ap.parse_args()

    from kdcg.cli import limit_threads

    limit_threads(args.threads)
    import numpy as np

    from kdcg.cg.mapping import load_dataset
    from kdcg.models.compiled_forces import open_model_forces
    from kdcg.models.ensemble import build_ensemble

    data = load_dataset(Path(args.dataset))
    species, cell = np.asarray(data["Z"][0]), np.asarray(data["cell"][0])
    n = len(data["R"])
    frames = np.stack([data["R"][k] for k in np.linspace(0, n - 1, 4).astype(int)]).astype(float)
    members = [Path(m) for m in args.models]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"one model": members[0]}
        for size in args.sizes:
            path = Path(tmp) / f"ensemble-{size}.pt"
            build_ensemble([members[k % len(members)] for k in range(size)], path)
            paths[f"ensemble of {size}"] = path
        forces = {}
        for name, path in paths.items():
            model = open_model_forces(path, "auto", data=data, steps=args.steps)
            model.set_pair_skin(1.0)
            for _ in range(10):  # warm-up: compilation, the pair list
                model.evaluate_batch(species, frames, cell)
            forces[name] = model
        times = {name: [] for name in paths}
        rng = np.random.default_rng(0)
        for r in range(args.rounds):
            for name, model in (forces.items() if r % 2 == 0 else reversed(list(forces.items()))):
                ts = []
                for _ in range(args.repeats):
                    moved = frames + rng.normal(0, 0.002, frames.shape)
                    t0 = time.perf_counter()
                    model.evaluate_batch(species, moved, cell)
                    ts.append(time.perf_counter() - t0)
                times[name].append(1000 * statistics.median(ts))
    print(f"machine: {cpu_name()} ({platform.machine()}), {args.threads} thread(s); engine "
          f"{type(forces['one model']).__name__}; 4 frames x {len(species)} beads per evaluation; "
          f"medians of {args.rounds} rounds x {args.repeats}")
    one = statistics.median(times["one model"])
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"{name:<16} {ms:7.2f} ms per evaluation  ({ms / one:.2f} x one model)")
    if len(args.sizes) >= 2:
        a, b = args.sizes[0], args.sizes[-1]
        ratio = statistics.median(times[f"ensemble of {b}"]) / statistics.median(times[f"ensemble of {a}"])
        print(f"ensemble of {b} over ensemble of {a}: {ratio:.2f}")


if __name__ == "__main__":
    main()

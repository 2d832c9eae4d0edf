"""Several models trained in one `kdcg train` job against one job per model (prints figures;
asserts nothing).

With a finished run's CG dataset and prior (the default's: `make run` first) and a config's
model and training sections: --models teachers (seeds 1, 2, ...) trained
  - apart: one `kdcg train` process per model, one after another (training.models_per_job 1);
  - together: one `kdcg train` process for all of them (training.models_per_job >= --models);
  - together with hippynn's plots (training.hippynn_plots true; before that option, every
    training drew them);
each process on one thread, as the workflow's training jobs run; the order of the ways rotates
over --rounds. Prints the wall seconds of each way, per model, their ratios, and whether every
model got the same weights every way (weights_sha256).

    .venv/bin/python benchmarks/training_jobs.py [--config config/config.yaml] [--models 4]
        [--dataset results/cg/dataset.npz] [--prior results/models/prior.json] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_helpers import cpu_name  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def train(seeds: list[int], folder: Path, args, config: str) -> float:
    """Wall seconds of one `kdcg train` process training the teachers of ``seeds``."""
    cmd = [sys.executable, "-m", "kdcg", "train", "teacher", "--seed", *map(str, seeds), "--config", config,
           "--dataset", args.dataset, "--prior", args.prior, "--threads", "1",
           "--out-dir", *[str(folder / f"teacher-{s}") for s in seeds]]
    t0 = time.perf_counter()
    # this checkout's kdcg, whichever one the environment installed
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow" / "src")}
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def with_plots(config: str, folder: Path) -> str:
    """A copy of ``config`` with training.hippynn_plots true."""
    import yaml

    cfg = yaml.safe_load(Path(config).read_text())
    cfg["training"]["hippynn_plots"] = True
    path = folder / "with_plots.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def weights(folder: Path, seeds: list[int]) -> list[str]:
    return [json.loads((folder / f"teacher-{s}" / "metrics.json").read_text())["weights_sha256"] for s in seeds]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    ap.add_argument("--dataset", default=str(REPO / "results" / "cg" / "dataset.npz"))
    ap.add_argument("--prior", default=str(REPO / "results" / "models" / "prior.json"))
    ap.add_argument("--models", type=int, default=4, help="teachers trained each way (seeds 1..N)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    for path in (args.dataset, args.prior):
        if not Path(path).is_file():
            sys.exit(f"{path} not found: run the workflow first (make run), or name a dataset and prior")

    seeds = list(range(1, args.models + 1))
    ways = ("apart", "together", "together, hippynn's plots")
    wall = {way: [] for way in ways}
    trained = []  # every model's weights_sha256, each way and round
    with tempfile.TemporaryDirectory() as tmp:
        plots_config = with_plots(args.config, Path(tmp))
        for r in range(args.rounds):
            for way in ways[r % 3:] + ways[:r % 3]:
                folder = Path(tmp) / way.replace(", ", "_").replace("'", "")
                shutil.rmtree(folder, ignore_errors=True)
                if way == "apart":
                    wall[way].append(sum(train([s], folder, args, args.config) for s in seeds))
                else:
                    wall[way].append(train(seeds, folder, args, args.config if way == "together" else plots_config))
                trained.append(weights(folder, seeds))

    med = {way: statistics.median(wall[way]) for way in ways}
    print(f"machine: {cpu_name()}, 1 thread per process (KDCG_DEVICE as set); config {args.config}; "
          f"dataset {args.dataset}; {args.models} teachers, {args.rounds} round(s), medians")
    print("| way | processes | wall s | s per model |")
    print("|---|---|---|---|")
    for way in ways:
        n_proc = args.models if way == "apart" else 1
        print(f"| {way} | {n_proc} | {med[way]:.1f} | {med[way] / args.models:.1f} |")
    apart, together, plots = (med[w] for w in ways)
    print(f"together / apart: {together / apart:.2f}; set-up a job pays once, estimated as "
          f"(apart - together) / {args.models - 1}: {(apart - together) / max(1, args.models - 1):.1f} s")
    print(f"together without / with hippynn's plots: {together / plots:.2f}; the plots cost "
          f"{(plots - together) / args.models:.1f} s per model")
    print(f"same weights every way: {'yes' if all(w == trained[0] for w in trained) else 'NO'}")


if __name__ == "__main__":
    main()

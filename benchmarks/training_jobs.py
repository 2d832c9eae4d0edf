"""Several models trained in one `kdcg train` job against one job per model (prints figures;
asserts nothing).

With a finished run's CG dataset and prior (the default's: `make run` first) and a config's
model and training sections: --models teachers (seeds 1, 2, ...) trained
  - apart: one `kdcg train` process per model, one after another (training.models_per_job 1);
  - together: one `kdcg train` process for all of them (training.models_per_job >= --models);
each process on one thread, as the workflow's training jobs run; the order of the two
alternates over --rounds. Prints the wall seconds of each path, per model, their ratio, and
whether every model got the same weights both ways (weights_sha256).

    .venv/bin/python benchmarks/training_jobs.py [--config config/config.yaml] [--models 4]
        [--dataset results/cg/dataset.npz] [--prior results/models/prior.json] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def train(seeds: list[int], folder: Path, args) -> float:
    """Wall seconds of one `kdcg train` process training the teachers of ``seeds``."""
    cmd = [sys.executable, "-m", "kdcg", "train", "teacher", "--seed", *map(str, seeds), "--config", args.config,
           "--dataset", args.dataset, "--prior", args.prior, "--threads", "1",
           "--out-dir", *[str(folder / f"teacher-{s}") for s in seeds]]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def weights(folder: Path, seeds: list[int]) -> list[str]:
    return [json.loads((folder / f"teacher-{s}" / "metrics.json").read_text())["weights_sha256"] for s in seeds]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


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
    apart_s, together_s, same = [], [], True
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ("apart", "together") if r % 2 == 0 else ("together", "apart")
            for way in order:
                folder = Path(tmp) / way
                shutil.rmtree(folder, ignore_errors=True)
                if way == "apart":
                    apart_s.append(sum(train([s], folder, args) for s in seeds))
                else:
                    together_s.append(train(seeds, folder, args))
            same &= weights(Path(tmp) / "apart", seeds) == weights(Path(tmp) / "together", seeds)

    apart, together = statistics.median(apart_s), statistics.median(together_s)
    print(f"machine: {cpu_name()}, 1 thread per process (KDCG_DEVICE as set); config {args.config}; "
          f"dataset {args.dataset}; {args.models} teachers, {args.rounds} round(s), medians")
    print("| way | processes | wall s | s per model |")
    print("|---|---|---|---|")
    print(f"| one job per model (models_per_job 1) | {args.models} | {apart:.1f} | {apart / args.models:.1f} |")
    print(f"| one job for all (models_per_job >= {args.models}) | 1 | {together:.1f} | {together / args.models:.1f} |")
    print(f"together / apart: {together / apart:.2f}; set-up a job pays once, estimated as "
          f"(apart - together) / {args.models - 1}: {(apart - together) / max(1, args.models - 1):.1f} s")
    print(f"same weights both ways: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()

"""The default run's whole training stage at two revisions of kdcg, side by side (prints
figures; asserts nothing).

From a finished run's all-atom stage and CG dataset (``make run`` first), each revision gets a
git worktree of its own, the run's ``results/aa`` and ``results/cg`` copied in (marked up to
date with ``snakemake --touch``), and then runs its own workflow for every trained model —
prior, teachers, labels, students, ensemble labels and students, with its own config and its
own way of cutting the jobs — with ``snakemake --cores N``, as ``make run`` does. The revisions
run one after the other, alternating over --rounds. Printed per revision: the training jobs'
summed wall time (core-minutes: one thread per training job; Snakemake's benchmark files, as
the README counts a fresh run's), the number of training jobs, the stage's wall time, and
whether both revisions trained every model to the same weights (``weights_sha256``).

The default baseline, 8138627, is the code the engine issue measured its 17.6 training
core-minutes with (every batch's pairs searched again, hippynn's full import, one model per
job, hippynn's plots).

    .venv/bin/python benchmarks/training_stage.py [--baseline 8138627] [--revision HEAD]
        [--run .] [--cores 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from bench_helpers import cpu_name  # noqa: E402


def model_targets(run: Path) -> list[str]:
    """Every trained model of the finished run, as workflow targets."""
    models = sorted(p.relative_to(run).as_posix() for p in (run / "results" / "models").glob("*/model.pt")
                    if p.with_name("metrics.json").is_file())  # not the ensemble: it is not trained
    if not models:
        sys.exit(f"{run / 'results' / 'models'}: no trained model (model.pt): run the workflow first (make run)")
    return models


def snakemake(worktree: Path, cores: int, *args: str) -> None:
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), *args]
    subprocess.run(cmd, cwd=worktree, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def training_stage(revision: str, run: Path, targets: list[str], cores: int, folder: Path) -> dict:
    """The training stage of ``revision`` in a fresh worktree under ``folder``."""
    worktree = folder / revision
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), revision], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for stage in ("aa", "cg"):
            shutil.copytree(run / "results" / stage, worktree / "results" / stage)
        snakemake(worktree, 1, "--touch", "results/cg/dataset.npz")
        t0 = time.perf_counter()
        snakemake(worktree, cores, *targets)
        wall = time.perf_counter() - t0
        job_s = []
        for tsv in (worktree / "results" / "benchmarks").glob("*.tsv"):
            with open(tsv) as f:
                job_s.append(float(next(csv.DictReader(f, delimiter="\t"))["s"]))
        weights = {}
        for target in targets:
            metrics = json.loads((worktree / target).with_name("metrics.json").read_text())
            weights[target] = metrics.get("weights_sha256")
        return {"core_min": sum(job_s) / 60, "jobs": len(job_s), "wall_min": wall / 60, "weights": weights}
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="8138627", help="the revision compared against")
    ap.add_argument("--revision", default="HEAD", help="the revision measured (committed code only)")
    ap.add_argument("--run", default=str(REPO), help="a checkout whose results/ hold a finished default run")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    run = Path(args.run).resolve()
    for needed in ("results/aa", "results/cg/dataset.npz"):
        if not (run / needed).exists():
            sys.exit(f"{run / needed} not found: run the workflow first (make run), or name a run with --run")
    targets = model_targets(run)
    names = {args.baseline: "baseline", args.revision: "measured"}
    results = {rev: [] for rev in names}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for rev in (names if r % 2 == 0 else list(names)[::-1]):
                results[rev].append(training_stage(rev, run, targets, args.cores, Path(tmp) / f"round{r}"))
                last = results[rev][-1]
                print(f"round {r + 1}: {rev}: {last['core_min']:.2f} core-min in {last['jobs']} training jobs,"
                      f" stage wall {last['wall_min']:.1f} min", flush=True)
    print(f"machine: {cpu_name()}, snakemake --cores {args.cores}; {len(targets)} models of the run in {run}; "
          f"{args.rounds} round(s), medians")
    print("| revision | training jobs | training core-minutes | stage wall min |")
    print("|---|---|---|---|")
    core = {}
    for rev, role in names.items():
        core[rev] = statistics.median(x["core_min"] for x in results[rev])
        print(f"| {rev} ({role}) | {results[rev][0]['jobs']} | {core[rev]:.2f} | "
              f"{statistics.median(x['wall_min'] for x in results[rev]):.1f} |")
    print(f"training core-minutes, {args.revision} / {args.baseline}: {core[args.revision] / core[args.baseline]:.2f}")
    a, b = (results[rev][0]["weights"] for rev in names)
    same = [t for t in targets if a[t] is not None and a[t] == b[t]]
    print(f"models with the same weights_sha256 at both revisions: {len(same)} of {len(targets)}")


if __name__ == "__main__":
    main()

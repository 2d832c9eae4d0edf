"""A finished run's cost per stage, from Snakemake's benchmark files (prints figures; asserts
nothing).

Each expensive rule writes ``<results>/benchmarks/<job>.tsv`` (wall seconds, peak resident
memory); this sums the jobs of each stage. Jobs of a stage run side by side on the cores, so a
stage's summed seconds are job-seconds, not wall time; the run's wall time is the whole run's
(``--wall-s``, from the caller's clock), printed beside them when given.

    .venv/bin/python benchmarks/stage_times.py results-ethaline [--wall-s 702]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_helpers import cpu_name  # noqa: E402

#: stage -> the benchmark files' name prefixes (kdcg's rules name their benchmark files so)
STAGES = {
    "all-atom box (Packmol)": ("packmol_box",),
    "all-atom MD (GROMACS EM, equilibration, production)": ("gromacs_",),
    "mapping and all-atom reference": ("cg_dataset", "aa_reference"),
    "training (teachers, labels, students)": ("train-",),
    "CG MD (LAMMPS)": ("md-",),
    "analysis of the CG MD": ("analyze-",),
}


def stage_of(name: str) -> str:
    return next((stage for stage, prefixes in STAGES.items() if name.startswith(prefixes)), "other")


def last_row(path: Path) -> dict | None:
    """A benchmark file's last row: a rerun appends, and the last row is the job that produced
    the outputs (None for an empty file)."""
    with open(path) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return rows[-1] if rows else None


def read(folder: Path) -> dict[str, dict]:
    """Per stage: jobs, summed wall seconds, the largest peak resident memory (MB)."""
    stages: dict[str, dict] = {}
    for path in sorted(folder.glob("*.tsv")):
        row = last_row(path)
        if row is None:
            continue
        entry = stages.setdefault(stage_of(path.stem), {"jobs": 0, "s": 0.0, "max_rss_MB": 0.0})
        entry["jobs"] += 1
        entry["s"] += float(row["s"])
        rss = row.get("max_rss", "NA")
        if rss not in ("NA", "-", ""):
            entry["max_rss_MB"] = max(entry["max_rss_MB"], float(rss))
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a finished run's results folder")
    parser.add_argument("--wall-s", type=float, help="the whole run's wall time (s), to print beside the stages")
    args = parser.parse_args()
    stages = read(args.results / "benchmarks")
    if not stages:
        sys.exit(f"{args.results / 'benchmarks'}: no benchmark files (not a finished kdcg run?)")
    print(f"# {args.results}  machine: {cpu_name()}")
    print(f"{'stage':<55} {'jobs':>5} {'job-minutes':>12} {'peak RSS (MB)':>14}")
    order = list(STAGES) + ["other"]
    for stage in sorted(stages, key=order.index):
        e = stages[stage]
        print(f"{stage:<55} {e['jobs']:>5} {e['s'] / 60:>12.2f} {e['max_rss_MB']:>14.0f}")
    total = sum(e["s"] for e in stages.values())
    print(f"{'all benchmarked jobs':<55} {sum(e['jobs'] for e in stages.values()):>5} {total / 60:>12.2f}")
    if args.wall_s:
        print(f"whole run, wall: {args.wall_s / 60:.1f} min")


if __name__ == "__main__":
    main()

"""The paper's scale from a finished `make paper-smoke` run: each stage's measured rate at the
paper's shapes, extrapolated to config/paper.yaml's durations (prints a table; asserts nothing).

The smoke run (config/paper.yaml + config/paper-smoke.yaml) keeps every size and shortens the
durations; its records give the rates:
  - all-atom MD: GROMACS ns/day of the equilibration and production (aa/*/<stage>.perf.json);
  - training: seconds per training frame and epoch (models/*/metrics.json: train_seconds over
    epochs x training frames; the epoch's validation and evaluation passes included);
  - CG MD: ms per step of a job's replicas evaluated together (md/*/replica-*/result.json),
    for one model and for the ensemble;
  - analysis: job seconds per replica (benchmarks/analyze-*.tsv) and frames analysed.
Then paper.yaml's counts and durations turn them into hours per job and per stage on the
smoke run's machine and threads. Training is priced at its cap (max_epochs): an upper bound.
On one GPU, the figures measured on an H200 (docs/performance.md) are given as options.

    .venv/bin/python benchmarks/paper_scale.py results-paper-smoke [--gpu-md-ns-day 27.9 --gpu-replicas 8]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

import yaml
from stage_times import last_row

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="the smoke run's results folder (results-paper-smoke)")
    ap.add_argument("--config", type=Path, default=REPO / "config/paper.yaml", help="the durations to extrapolate to")
    ap.add_argument("--gpu-md-ns-day", type=float, default=27.9,
                    help="aggregate ns/day of --gpu-replicas batched replicas of one model on one GPU "
                         "(default: the H200 figure of docs/performance.md)")
    ap.add_argument("--gpu-replicas", type=int, default=8)
    ap.add_argument("--gpu-train-ms-frame", type=float, default=10.4,
                    help="training ms per 1,000-bead frame on one GPU (default: the H200 figure)")
    args = ap.parse_args()
    res, cfg = args.results, yaml.safe_load(args.config.read_text())
    rows, per_replica_steps, train_frames = estimate(res, cfg)
    md = cfg["md"]
    print(f"# {res}: rates measured by the smoke run, extrapolated to {args.config.name}'s durations "
          f"on the smoke run's machine and threads")
    print(f"{'stage':70s} {'jobs':>5s} {'measured':>34s} {'h per job':>12s} {'h in all':>12s}")
    for stage, jobs, rate, h_job, h_all in rows:
        print(f"{stage:70s} {jobs:5d} {rate:>34s} {h_job:12,.1f} {h_all:12,.1f}")
    print(f"total: {sum(r[4] for r in rows):,.0f} job-hours")
    # one GPU, from the measured GPU figures
    gpu_md_h = md["replicas"] * per_replica_steps * md["timestep_fs"] * 1e-6 / args.gpu_md_ns_day * 24
    gpu_train_h = args.gpu_train_ms_frame / 1000 * train_frames * cfg["training"]["max_epochs"] / 3600
    print(f"one GPU ({args.gpu_md_ns_day} ns/day for {args.gpu_replicas} batched replicas, "
          f"{args.gpu_train_ms_frame} ms per training frame): a model's {md['replicas']} replicas "
          f"{gpu_md_h:.1f} h, a model's training at the cap {gpu_train_h:.1f} h")


def estimate(res: Path, cfg: dict) -> tuple[list[tuple], int, float]:
    """(stage, jobs, measured rate, hours per job, hours in all) per stage; the MD steps per
    replica; the training frames per epoch at cfg's durations."""
    rows = []  # stage, jobs, measured rate, hours per job, hours in all

    # all-atom MD: GROMACS, one job per stage
    aa = cfg["aa_md"]
    for stage, ps in (("nvt_equil", aa["equilibration_ps"]), ("nvt_prod", aa["production_ps"])):
        perf = json.loads((res / "aa" / stage / f"{stage}.perf.json").read_text())
        h = ps / 1000 / perf["ns_per_day"] * 24
        rows.append((f"all-atom {stage}", 1, f"{perf['ns_per_day']:.2f} ns/day ({perf['threads']} threads)", h, h))

    # training: the paper's frames x its epoch cap
    n_frames = int(round(aa["production_ps"] / aa["output_interval_ps"])) + 1
    per_frame_epoch, smoke_frames = [], None
    for metrics in sorted((res / "models").glob("*/metrics.json")):
        m = json.loads(metrics.read_text())
        if m.get("train_seconds") and m.get("n_train"):
            per_frame_epoch.append(m["train_seconds"] / (m["epochs"] * m["n_train"]))
            smoke_frames = m["n_train"] + m["n_test"] + len(m.get("valid_frames", []))
    s_frame = statistics.median(per_frame_epoch)
    train_fraction = 1 - (len(m.get("valid_frames", [])) + m["n_test"]) / smoke_frames
    n_models = len(per_frame_epoch)
    h_model = s_frame * train_fraction * n_frames * cfg["training"]["max_epochs"] / 3600
    rows.append((f"training, {n_models} models (cap {cfg['training']['max_epochs']} epochs, {n_frames} frames)",
                 n_models, f"{1000 * s_frame:.0f} ms per training frame-epoch", h_model, n_models * h_model))

    # CG MD: per replica-step, one model and the ensemble
    md = cfg["md"]
    steps = int(round((md["equilibration_ps"] + md["sample_interval_ps"] * md["n_samples"]) * 1000 / md["timestep_fs"]))
    per_kind = {"one model": [], "ensemble": []}
    for result in sorted((res / "md").glob("*/replica-1/result.json")):
        r = json.loads(result.read_text())
        jobs = sorted((res / "md" / r["model"] / "jobs").glob("md-*.json"))  # the job's record lists its replicas
        in_job = len(json.loads(jobs[0].read_text())["replicas"]) if jobs else 1
        per_kind["ensemble" if r["n_members"] > 1 else "one model"].append(r["ms_per_step"] / in_job)
    n_replicas = md["replicas"]
    for kind, values in per_kind.items():
        if not values:
            continue
        ms = statistics.median(values)
        n_models_kind = len(values)
        h = steps * ms / 1000 / 3600
        rows.append((f"CG MD, {kind} ({steps:,} steps per replica)", n_models_kind * n_replicas,
                     f"{ms:.0f} ms per replica-step", h, n_models_kind * n_replicas * h))

    # analysis: job seconds per replica, scaled by the frames analysed
    analysis_s = []  # per replica
    for path in sorted((res / "benchmarks").glob("analyze-*.tsv")):
        span = re.search(r"replicas-(\d+)(?:-(\d+))?\.tsv$", path.name)
        in_job = int(span.group(2) or span.group(1)) - int(span.group(1)) + 1
        analysis_s.append(float(last_row(path)["s"]) / in_job)
    smoke_md = yaml.safe_load((res / "config" / "md.yaml").read_text()) if (res / "config" / "md.yaml").exists() else {}
    smoke_samples = (smoke_md.get("md") or smoke_md).get("n_samples", md["n_samples"])
    per_replica = statistics.median(analysis_s)
    n_models_all = len(list((res / "md").glob("*/replica-1/result.json")))
    h_analysis = per_replica * md["n_samples"] / smoke_samples / 3600
    rows.append((f"analysis ({md['n_samples']} frames per replica)", n_models_all * n_replicas,
                 f"{per_replica:.1f} s per replica of {smoke_samples} frames", h_analysis,
                 n_models_all * n_replicas * h_analysis))

    return rows, steps, train_fraction * n_frames


if __name__ == "__main__":
    main()

"""benchmarks/stage_times.py: every rule's benchmark file falls in a stage, and the sums are the files'."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import stage_times  # noqa: E402


def test_every_benchmark_file_the_rules_write_belongs_to_a_stage():
    names = []
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        names += re.findall(r'\{BENCH\}/([^"]+)\.tsv"', smk.read_text())
    assert len(names) == 9, names
    for name in names:
        example = name.replace("{{model}}", "teacher-1").replace("{{replicas}}", "1-2").replace("{{batch}}", "teachers")
        assert stage_times.stage_of(example) != "other", name


def test_stage_sums_are_the_job_seconds_and_the_largest_peak_memory(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\n"
    (tmp_path / "md-teacher-1-replicas-1-2.tsv").write_text(header + "30.5\t0:00:30\t500.0\t900\n")
    (tmp_path / "md-ensemble-replicas-1-2.tsv").write_text(header + "99.0\t0:01:39\t700.0\t900\n"
                                                           "90.0\t0:01:30\t650.0\t900\n")  # a rerun: the last row
    (tmp_path / "packmol_box.tsv").write_text(header + "7.0\t0:00:07\tNA\tNA\n")
    stages = stage_times.read(tmp_path)
    assert stages["CG MD (LAMMPS)"] == {"jobs": 2, "s": pytest.approx(120.5), "max_rss_MB": 650.0}
    assert stages["all-atom box (Packmol)"] == {"jobs": 1, "s": 7.0, "max_rss_MB": 0.0}


def test_paper_scale_extrapolates_the_smoke_runs_rates_to_the_papers_durations(tmp_path):
    """A made-up smoke run with round rates: every row is the arithmetic the docstring states."""
    import json

    import paper_scale

    res = tmp_path / "results"
    for stage, ns_day in (("nvt_equil", 4.0), ("nvt_prod", 6.0)):
        (res / "aa" / stage).mkdir(parents=True)
        (res / "aa" / stage / f"{stage}.perf.json").write_text(json.dumps({"ns_per_day": ns_day, "threads": 2}))
    for model, seconds in (("teacher-1", 20.0), ("teacher-2", 40.0)):  # 2 epochs x 10 training frames
        (res / "models" / model).mkdir(parents=True)
        (res / "models" / model / "metrics.json").write_text(json.dumps(
            {"train_seconds": seconds, "epochs": 2, "n_train": 10, "n_test": 5, "valid_frames": [0, 1, 2, 3, 4]}))
    for model, members, ms_step in (("teacher-1", 1, 800.0), ("teacher-2", 1, 1200.0), ("ensemble", 2, 4000.0)):
        (res / "md" / model / "replica-1").mkdir(parents=True)
        (res / "md" / model / "jobs").mkdir()
        (res / "md" / model / "replica-1" / "result.json").write_text(json.dumps(
            {"model": model, "n_members": members, "ms_per_step": ms_step}))
        (res / "md" / model / "jobs" / "md-1-4.json").write_text(json.dumps({"replicas": [{}, {}, {}, {}]}))
    (res / "benchmarks").mkdir()
    for model, s in (("teacher-1", 8.0), ("teacher-2", 8.0), ("ensemble", 12.0)):
        (res / "benchmarks" / f"analyze-{model}-replicas-1-4.tsv").write_text(f"s\th:m:s\n{s}\t0:00:08\n")
    (res / "config").mkdir()
    (res / "config" / "md.yaml").write_text("md: {n_samples: 5}\n")
    cfg = {"aa_md": {"equilibration_ps": 1000.0, "production_ps": 200.0, "output_interval_ps": 1.0},
           "training": {"max_epochs": 100},
           "md": {"replicas": 4, "timestep_fs": 2.0, "equilibration_ps": 10.0, "sample_interval_ps": 1.0,
                  "n_samples": 90}}
    rows, steps, frames = paper_scale.estimate(res, cfg)
    hours = {row[0].split(" (")[0].split(",")[0]: row for row in rows}
    assert hours["all-atom nvt_equil"][3] == pytest.approx(1.0 / 4.0 * 24)
    assert hours["all-atom nvt_prod"][3] == pytest.approx(0.2 / 6.0 * 24)
    # median 1.5 s per frame-epoch; half of 201 frames train; 100 epochs
    assert frames == pytest.approx(100.5)
    assert hours["training"][1] == 2 and hours["training"][3] == pytest.approx(1.5 * 100.5 * 100 / 3600)
    assert steps == 50_000  # (10 + 90) ps at 2 fs
    md_rows = [row for row in rows if row[0].startswith("CG MD")]
    assert [(r[1], r[3]) for r in md_rows] == [
        (8, pytest.approx(50_000 * 0.25 / 3600)),  # one model: median 1000 ms for 4 replicas
        (4, pytest.approx(50_000 * 1.0 / 3600))]   # the ensemble: 4000 ms for 4
    assert hours["analysis"][1] == 12 and hours["analysis"][3] == pytest.approx(2.0 * 90 / 5 / 3600)

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

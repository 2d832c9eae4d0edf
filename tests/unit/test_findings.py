"""kdcg.analysis.findings: the comparisons behind each of the paper's findings, on replicas with known TAEs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from kdcg.analysis import findings
from kdcg.naming import classify


def replica(model, r, rdf_values, status="stable", drifting=False):
    family, variant, seed = classify(model)
    tae = {"rdf": dict(zip(("A-A", "A-B"), rdf_values))} if status == "stable" else {}
    return {"model": model, "family": family, "variant": variant, "seed": seed, "replica": r,
            "result": {"status": status},
            "analysis": {"tae": tae, "cdf_windows": {"drift": {"A": {"drifting": drifting}, "B": {"drifting": False}}}}}


@pytest.fixture
def replicas():
    reps = []
    # teacher k: replica scores 1k + {0, 0.2, 0.4} (mean over the two RDF keys)
    for k in (1, 2, 3):
        for i, extra in enumerate((0.0, 0.2, 0.4)):
            reps.append(replica(f"teacher-{k}", i + 1, (k + extra - 0.1, k + extra + 0.1), drifting=(k == 3 and i == 0)))
    for i, v in enumerate((0.5, 0.7, 0.9)):
        reps.append(replica("ensemble", i + 1, (v, v)))
    # the single-teacher students follow their teachers at half the value
    for k in (1, 2, 3):
        for i, extra in enumerate((0.0, 0.2)):
            reps.append(replica(f"student-st_ei_ft_faa-{k}", i + 1, (k / 2 + extra, k / 2 + extra)))
    for i, v in enumerate((0.6, 0.8, 1.0)):
        reps.append(replica("student-se_ei_ft_faa", i + 1, (v, v)))
    reps.append(replica("student-se_ft_faa", 1, (3.0, 3.0)))
    reps.append(replica("student-se_ft_faa", 2, (3.4, 3.4)))
    reps.append(replica("student-se_ft_faa", 3, None, status="unstable"))
    return reps


def _rows(rows, comparison):
    return [dict(zip(findings.HEADER, r)) for r in rows if r[1] == comparison and r[2] == "rdf"]


def test_each_finding_is_the_comparison_of_its_groups(replicas):
    rows = findings.findings(replicas)
    assert {r[2] for r in rows} == {"rdf"}  # only quantities with TAEs

    seeds = _rows(rows, "teachers differ by seed")[0]
    assert seeds["value"] == pytest.approx(2.0)  # seed means 1.2, 2.2, 3.2
    groups = [np.array([k, k + 0.2, k + 0.4]) for k in (1, 2, 3)]
    assert seeds["p_value"] == pytest.approx(stats.f_oneway(*groups).pvalue)
    assert seeds["a_n"] == 9 and seeds["a_drifting"] == 1 and seeds["a_mean"] == pytest.approx(2.2)
    one = _rows(rows, "teacher of one seed")
    assert [r["a_mean"] for r in one] == pytest.approx([1.2, 2.2, 3.2])
    assert one[0]["a_se"] == pytest.approx(0.2 / np.sqrt(3))

    ens = _rows(rows, "ensemble vs its teachers")[0]
    assert ens["value"] == pytest.approx(0.7 - 2.2)
    teachers = np.concatenate(groups)
    assert ens["p_value"] == pytest.approx(stats.ttest_ind([0.5, 0.7, 0.9], teachers, equal_var=False).pvalue)

    mirror = _rows(rows, "S_T students mirror their teachers")[0]
    assert mirror["value"] == pytest.approx(1.0)  # seed means k/2 + 0.1 against k + 0.2
    per_seed = _rows(rows, "single-teacher student and its teacher, one seed")
    assert [(r["a"], r["b"]) for r in per_seed] == [(f"student-st_ei_ft_faa-{k}", f"teacher-{k}") for k in (1, 2, 3)]
    assert [r["a_mean"] for r in per_seed] == pytest.approx([0.6, 1.1, 1.6])
    assert [r["b_mean"] for r in per_seed] == pytest.approx([1.2, 2.2, 3.2])
    se = _rows(rows, "S_E student vs the ensemble")[0]
    assert se["value"] == pytest.approx(0.1)

    energy = _rows(rows, "per-bead energies vs no energy")[0]
    assert energy["value"] == pytest.approx(0.8 - 3.2) and energy["b_n"] == 2 and energy["b_unstable"] == 1
    # variants the config did not train have no rows
    assert not _rows(rows, "with vs without teacher forces") and not _rows(rows, "per-bead energies vs system energy")


def test_markdown_shows_means_errors_and_differences(replicas):
    text = findings.markdown(findings.findings(replicas))
    assert "| 2 | ensemble vs its teachers | rdf | ensemble: 0.700 ± 0.115 (3; 0, 0)" in text
    assert "| -1.500 |" in text

"""kdcg.analysis.findings and kdcg.analysis.inference: each finding's test in its unit, on
replicas with known TAEs, and the tests themselves against their formulas."""

from __future__ import annotations

import math
from itertools import permutations

import numpy as np
import pytest
from scipy import stats

from kdcg.analysis import findings, inference
from kdcg.naming import classify


def replica(model, r, rdf_values, status="stable", drifting=False):
    family, variant, seed = classify(model)
    tae = {"rdf": dict(zip(("A-A", "A-B"), rdf_values))} if status == "stable" else {}
    return {"model": model, "family": family, "variant": variant, "seed": seed, "replica": r,
            "result": {"status": status},
            "analysis": {"tae": tae, "cdf_windows": {"drift": {"A": {"drifting": drifting}, "B": {"drifting": False}}}}}


def model_replicas(model, scores, **kw):
    return [replica(model, i + 1, (s - 0.05, s + 0.05), **kw) for i, s in enumerate(scores)]


def rows_of(rows, comparison, quantity="rdf"):
    return [r for r in rows if r["comparison"] == comparison and r["quantity"] == quantity]


@pytest.fixture
def replicas():
    reps = []
    # teacher k: replica scores k + {0, 0.2, 0.4}; the first replica of teacher 3 drifts
    for k in (1, 2, 3):
        for i, extra in enumerate((0.0, 0.2, 0.4)):
            reps.append(replica(f"teacher-{k}", i + 1, (k + extra - 0.1, k + extra + 0.1), drifting=(k == 3 and i == 0)))
    reps += model_replicas("ensemble", (0.5, 0.7, 0.9))
    # the single-teacher students follow their teachers at half the value
    for k in (1, 2, 3):
        reps += model_replicas(f"student-st_ei_ft_faa-{k}", (k / 2, k / 2 + 0.2))
    reps += model_replicas("student-se_ei_ft_faa", (0.6, 0.8, 1.0))
    reps += model_replicas("student-se_ft_faa", (3.0, 3.4))
    reps.append(replica("student-se_ft_faa", 3, None, status="unstable"))
    return reps


def test_each_finding_is_tested_in_its_unit(replicas):
    rows = findings.findings(replicas, {"rdf": 0.5})
    assert {r["quantity"] for r in rows} == {"rdf"}  # only quantities with TAEs
    teacher_groups = [np.array([k, k + 0.2, k + 0.4]) for k in (1, 2, 3)]

    seeds = rows_of(rows, "teacher seeds")[0]
    assert seeds["unit"] == "replica" and seeds["a_models"] == 3 and seeds["a_replicas"] == 9
    assert seeds["value"] == pytest.approx(1.0)  # SD of the seed means 1.2, 2.2, 3.2
    assert seeds["p_value"] == pytest.approx(stats.alexandergovern(*teacher_groups).pvalue)
    assert seeds["a_drifting"] == 1 and seeds["a_mean"] == pytest.approx(2.2)
    one = rows_of(rows, "teacher of one seed")
    assert [r["a_mean"] for r in one] == pytest.approx([1.2, 2.2, 3.2]) and all(r["verdict"] == "" for r in one)
    assert one[0]["a_se"] == pytest.approx(0.2 / np.sqrt(3))

    # 2: the ensemble (one model) against the 3 teachers as models: prediction interval, df 2
    ens = rows_of(rows, "ensemble vs its teachers")[0]
    assert ens["unit"] == "trained model" and (ens["a_models"], ens["b_models"]) == (1, 3)
    t = (0.7 - 2.2) / (1.0 * math.sqrt(1 + 1 / 3))
    assert ens["value"] == pytest.approx(-1.5) and ens["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 2))
    assert ens["b_se"] == pytest.approx(1.0 / math.sqrt(3))
    # ... and, separately, this ensemble against these teachers given replica noise only
    these = rows_of(rows, "ensemble vs its teachers: these models")[0]
    assert these["unit"] == "replica" and these["value"] == pytest.approx(-1.5)
    parts = [0.04 / 3] + [0.04 / 3 / 9] * 3  # s^2/n of the ensemble, of each teacher over k^2
    df = sum(parts) ** 2 / sum(v**2 / 2 for v in parts)
    assert these["p_value"] == pytest.approx(2 * stats.t.sf(1.5 / math.sqrt(sum(parts)), df))
    assert these["p_value"] < ens["p_value"]

    # 3: the mirror over 3 seeds, an exact permutation test (3! = 6 pairings, one-sided)
    mirror = rows_of(rows, "st_ei_ft_faa and its teachers over seeds")[0]
    assert mirror["value"] == pytest.approx(1.0) and mirror["p_value"] == pytest.approx(1 / 6)
    per_seed = rows_of(rows, "single-teacher student and its teacher, one seed")
    assert [(r["a"], r["b"]) for r in per_seed] == [(f"student-st_ei_ft_faa-{k}", f"teacher-{k}") for k in (1, 2, 3)]
    assert [r["a_mean"] for r in per_seed] == pytest.approx([0.6, 1.1, 1.6])
    # S_E vs the ensemble: one model each, an equivalence test on replicas within the margin
    se = rows_of(rows, "S_E student vs the ensemble: these models")[0]
    assert se["unit"] == "replica" and se["value"] == pytest.approx(0.1) and se["margin"] == 0.5
    assert not rows_of(rows, "S_E student vs the ensemble")  # no model-level test of one model vs one

    energy = rows_of(rows, "per-bead energies vs no energy: these models")[0]
    assert energy["value"] == pytest.approx(0.8 - 3.2) and energy["b_replicas"] == 2 and energy["b_unstable"] == 1
    assert energy["p_value"] == pytest.approx(stats.ttest_ind([0.6, 0.8, 1.0], [3.0, 3.4], equal_var=False).pvalue)
    # variants the config did not train have no rows
    assert not [r for r in rows if r["comparison"].startswith(("with vs without", "per-bead energies vs system"))]


def test_pooled_replicas_of_different_seeds_do_not_make_a_variant_comparison_significant():
    """Four teachers whose seeds differ far more than their replicas: the ensemble sits below
    their pooled replicas (Welch on the 16 pooled replicas would call it significant), but as
    one model among models it is within the teachers' spread: not resolved."""
    reps = []
    for k, centre in zip((1, 2, 3, 4), (1.0, 2.0, 3.0, 4.0)):
        reps += model_replicas(f"teacher-{k}", centre + np.array([-0.02, 0.0, 0.01, 0.02]))
    reps += model_replicas("ensemble", 1.6 + np.array([-0.02, 0.0, 0.01, 0.02]))
    rows = findings.findings(reps, {"rdf": 0.5})
    pooled = np.concatenate([c + np.array([-0.02, 0.0, 0.01, 0.02]) for c in (1.0, 2.0, 3.0, 4.0)])
    assert stats.ttest_ind(1.6 + np.array([-0.02, 0.0, 0.01, 0.02]), pooled, equal_var=False).pvalue < 0.01
    variant = rows_of(rows, "ensemble vs its teachers")[0]
    assert variant["unit"] == "trained model" and variant["p_value"] > 0.3 and variant["verdict"] == "not resolved"
    assert variant["mde_80"] > 1.0  # the teachers' own spread (SD 1.3) hides anything smaller
    # the seeds themselves clearly differ
    assert rows_of(rows, "teacher seeds")[0]["verdict"] == "reproduced"


def test_many_models_with_a_real_difference_are_resolved():
    """Twelve single-teacher students around 2.0, the ensemble student at 1.0: one model far
    outside the others' spread is resolved at model level; two groups of 12 model means with a
    real shift are resolved by Welch on the means."""
    rng = np.random.default_rng(7)
    centres = 2.0 + 0.1 * rng.standard_normal(12)
    reps = []
    for k, c in enumerate(centres, start=1):
        reps += model_replicas(f"teacher-{k}", c + 0.5 + 0.02 * rng.standard_normal(3))
        reps += model_replicas(f"student-st_ei_ft_faa-{k}", c + 0.02 * rng.standard_normal(3))
    reps += model_replicas("student-se_ei_ft_faa", 1.0 + 0.02 * rng.standard_normal(3))
    rows = findings.findings(reps, {"rdf": 0.5})
    st = rows_of(rows, "S_E vs S_T student, same loss")[0]
    assert st["unit"] == "trained model" and st["b_models"] == 12 and st["value"] < -0.8
    assert st["p_holm"] < 0.001 and st["verdict"] == "reproduced" and st["mde_80"] is None
    # the mirror over 12 seeds: students follow their teachers' seed means
    mirror = rows_of(rows, "st_ei_ft_faa and its teachers over seeds")[0]
    assert mirror["value"] > 0.9 and mirror["verdict"] == "reproduced"

    a, b = 1.0 + 0.1 * rng.standard_normal(12), 1.3 + 0.1 * rng.standard_normal(12)
    d = inference.welch_on_means(a, b)
    assert d.p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue) and d.p < 0.001


def test_prediction_interval_and_replica_difference_formulas():
    d = inference.prediction_interval_test(1.0, np.array([2.0, 3.0, 4.0, 5.0]))
    s = np.std([2.0, 3.0, 4.0, 5.0], ddof=1)
    assert d.value == -2.5 and d.df == 3 and d.se == pytest.approx(s * math.sqrt(1.25))
    assert d.p == pytest.approx(2 * stats.t.sf(2.5 / (s * math.sqrt(1.25)), 3))
    # with one model on each side the replica difference is Welch's t-test
    a, b = np.array([1.0, 1.2, 1.1, 0.9]), np.array([1.5, 1.3, 1.6])
    r = inference.replica_difference(a, [b])
    assert r.p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    # the minimum detectable difference: 80 % power of the two-sided t-test at that difference
    mde = inference.minimum_detectable_difference(0.1, 10)
    power = stats.nct.sf(stats.t.ppf(0.975, 10), 10, mde / 0.1)
    assert power == pytest.approx(0.8, abs=0.01)
    spread = inference.minimum_detectable_spread([np.array([0.0, 1.0, 2.0])] * 4)
    lam = 3 * 4 * spread**2 / 1.0
    assert stats.ncf.sf(stats.f.ppf(0.95, 3, 8), 3, 8, lam) == pytest.approx(0.8)


def test_mirror_permutation_p_counts_pairings():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    r, p, mde = inference.mirror_test(x, 2 * x + 1)
    assert r == pytest.approx(1.0) and p == pytest.approx(1 / 24) and mde is not None and 0.9 < mde < 1
    y = np.array([1.0, 3.0, 2.0, 4.0])
    r, p, _ = inference.mirror_test(x, y)
    rs = [np.corrcoef(x, y[list(q)])[0, 1] for q in permutations(range(4))]
    assert p == pytest.approx(np.mean(np.array(rs) >= r - 1e-12)) and r == pytest.approx(0.8)


def test_equivalence_and_holm():
    d = inference.Difference(0.05, 0.1, 20, 0.6, "")
    p_equiv, p_beyond = inference.equivalence(d, 0.5)
    assert p_equiv == pytest.approx(stats.t.cdf((0.05 - 0.5) / 0.1, 20)) and p_beyond > 0.99
    far = inference.Difference(2.0, 0.1, 20, 1e-12, "")
    assert inference.equivalence(far, 0.5)[1] == pytest.approx(stats.t.sf(15.0, 20))
    assert inference.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_verdicts_follow_holm_and_direction(replicas):
    rows = findings.findings(replicas, {"rdf": 0.5})
    tested = [r for r in rows if r["verdict"]]
    ps = [r["p_value"] for r in tested if r["p_value"] is not None]
    assert len(ps) >= len(tested) - 1
    for r in tested:
        assert r["verdict"] in ("reproduced", "contradicted", "not resolved")
        if r["verdict"] == "not resolved" and r["p_value"] is not None and r["test"] != "":
            assert r["p_holm"] >= 0.05 or r["test"].startswith("TOST")
            assert r["mde_80"] is not None or "Pearson" in r["test"]
        assert r["p_holm"] is None or r["p_holm"] >= r["p_value"] - 1e-15
    # a lower TAE with significance: reproduced; the same gap in the other direction: contradicted
    noise = np.array([-0.01, 0.0, 0.005, 0.01])
    for low, high, verdict in ((0.8, 3.2, "reproduced"), (3.2, 0.8, "contradicted")):
        pair = model_replicas("student-se_ei_ft_faa", low + noise) + model_replicas("student-se_ft_faa", high + noise)
        energy = rows_of(findings.findings(pair, {"rdf": 0.5}), "per-bead energies vs no energy: these models")[0]
        assert energy["value"] == pytest.approx(low - high) and energy["verdict"] == verdict
    # equivalence: within a wide margin reproduced, far beyond a narrow one contradicted
    se = rows_of(findings.findings(replicas, {"rdf": 5.0}), "S_E student vs the ensemble: these models")[0]
    assert se["verdict"] == "reproduced"


def test_scores_from_tables_reanalyse_a_finished_run(tmp_path, replicas):
    """The committed study's tables give the same findings as the replicas they were written from."""
    from kdcg.report.tables import _write_csv

    tae_rows, stab_rows = [], []
    for r in replicas:
        for q, keys in r["analysis"]["tae"].items():
            for key, v in keys.items():
                tae_rows.append([r["model"], r["family"], r["variant"], r["seed"], r["replica"], "stable", q, key, v])
        stab_rows.append([r["model"], r["family"], r["variant"], r["seed"], r["replica"], r["result"]["status"],
                          r["analysis"]["cdf_windows"]["drift"]["A"]["drifting"], False])
    _write_csv(tmp_path / "tae.csv", ["model", "family", "variant", "seed", "replica", "status", "quantity", "key", "tae"],
               tae_rows)
    _write_csv(tmp_path / "stability.csv", ["model", "family", "variant", "seed", "replica", "status", "cdf_drift_A",
                                            "cdf_drift_B"], stab_rows)
    again = findings.findings(findings.scores_from_tables(tmp_path / "tae.csv", tmp_path / "stability.csv"),
                              {"rdf": 0.5}, scored=True)
    direct = findings.findings(replicas, {"rdf": 0.5})
    assert [(r["comparison"], r["verdict"], r["a_drifting"]) for r in again] == \
        [(r["comparison"], r["verdict"], r["a_drifting"]) for r in direct]
    for r, s in zip(again, direct):
        for key in ("value", "p_value", "p_holm", "a_mean"):
            assert (r[key] is None) == (s[key] is None) and (r[key] is None or r[key] == pytest.approx(s[key], rel=1e-5))


def test_markdown_shows_units_counts_and_verdicts(replicas):
    text = findings.markdown(findings.findings(replicas, {"rdf": 0.5}))
    assert "| 2 | the ensemble beats its teachers | ensemble vs its teachers | rdf | trained model | ensemble: 0.700 (1 models" in text
    assert "| -1.500 |" in text and "not resolved" in text


def test_the_committed_study_reanalysed_from_its_tables(tmp_path):
    """kdcg findings on the third study run's committed tables: the audit's model-level numbers."""
    import csv
    import subprocess
    import sys

    from conftest import REPO

    out = subprocess.run([sys.executable, "-m", "kdcg", "findings", "--tables", str(REPO / "docs/study-100ps/tables"),
                          "--margin-tae", "0.47", "0.12", "0.09", "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    assert "54 rows" in out
    with open(tmp_path / "findings.csv") as fh:
        rows = {(r["comparison"], r["quantity"]): r for r in csv.DictReader(fh)}
    assert float(rows[("teacher seeds", "rdf")]["p_value"]) == pytest.approx(5.1e-6, rel=0.05)
    assert rows[("teacher seeds", "rdf")]["verdict"] == "reproduced"
    ens = rows[("ensemble vs its teachers", "rdf")]
    assert ens["unit"] == "trained model" and float(ens["p_value"]) == pytest.approx(0.56, abs=0.01)
    assert ens["verdict"] == "not resolved" and float(ens["mde_80"]) > 0.3
    assert float(rows[("st_ei_ft_faa and its teachers over seeds", "rdf")]["p_value"]) == pytest.approx(1 / 24, rel=0.05)


def test_the_pilots_drift_rule_counts_models_not_replicas(tmp_path):
    """docs/pilot.md's rule on a stability table with known flags: a replica drifts on a named
    species' flag or when unstable, a model on 2 of its 4 replicas, the teachers' instability on
    2 of 4 teachers; a flag for a species not named does not count."""
    import csv

    from kdcg.analysis import drift_rule
    from kdcg.cli import main

    header = ["model", "family", "variant", "seed", "replica", "status", "cdf_drift_Cho", "cdf_drift_Cl",
              "cdf_drift_urea"]
    flags = {  # model -> per replica (status, Cho, Cl, urea)
        "teacher-1": [("stable", True, False, False), ("stable", False, False, True)] + [("stable", False, False, False)] * 2,
        "teacher-2": [("stable", True, False, False)] + [("stable", False, True, False)] * 3,  # Cl is not named
        "teacher-3": [("unstable", None, None, None), ("stable", False, False, True)] + [("stable", False, False, False)] * 2,
        "teacher-4": [("stable", False, False, False)] * 4,
        "ensemble": [("stable", True, True, True)] * 4,
    }
    path = tmp_path / "stability.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for model, reps in flags.items():
            family, variant, seed = classify(model)
            for r, (status, *f) in enumerate(reps, 1):
                w.writerow([model, family, variant, seed, r, status, *f])
    models = drift_rule.model_drift(drift_rule.read_stability(path), ["Cho", "urea"], 2, path)
    got = {m.model: (m.drifting, m.unstable, m.drifts) for m in models}
    assert got == {"teacher-1": (2, 0, True), "teacher-2": (1, 0, False), "teacher-3": (2, 1, True),
                   "teacher-4": (0, 0, False), "ensemble": (4, 0, True)}
    assert drift_rule.family_verdict(models, "T", 2) == {"family": "T", "models": 4, "drifting_models": 2,
                                                         "models_needed": 2, "appears": True}
    assert not drift_rule.family_verdict(models, "T", 3)["appears"]
    # the command line: the same table, and one line naming the file for a species it lacks
    main(["drift-rule", "--stability", str(path), "--species", "Cho", "urea", "--out", str(tmp_path / "rule.csv")])
    rows = list(csv.DictReader(open(tmp_path / "rule.csv")))
    assert [(r["model"], r["drifting_replicas"], r["model_drifts"]) for r in rows][:3] == [
        ("teacher-1", "2", "True"), ("teacher-2", "1", "False"), ("teacher-3", "2", "True")]
    with pytest.raises(drift_rule.InputError, match="no drift flags for species 'EG'"):
        drift_rule.model_drift(drift_rule.read_stability(path), ["EG"], 2, path)
    # one experiment run in parts: teachers 1-2 in one table, 3-4 in another, judged as the whole
    lines = path.read_text().splitlines()
    first, second = tmp_path / "first" / "stability.csv", tmp_path / "second" / "stability.csv"
    for part, keep in ((first, ("teacher-1", "teacher-2")), (second, ("teacher-3", "teacher-4"))):
        part.parent.mkdir()
        part.write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in keep]) + "\n")
    main(["drift-rule", "--stability", str(first), str(second), "--species", "Cho", "urea",
          "--out", str(tmp_path / "parts.csv")])
    parts = list(csv.DictReader(open(tmp_path / "parts.csv")))
    assert [(r["model"], r["model_drifts"]) for r in parts] == [
        ("teacher-1", "True"), ("teacher-2", "False"), ("teacher-3", "True"), ("teacher-4", "False")]
    families = list(csv.DictReader(open(tmp_path / "parts_families.csv")))
    assert [(f["family"], f["models"], f["drifting_models"]) for f in families] == [("T", "4", "2")]
    with pytest.raises(drift_rule.InputError, match="lists teacher-1, which .* lists too"):
        drift_rule.read_stability_tables([first, path])


def test_the_drift_summary_per_family_has_exact_intervals_and_fisher_counts():
    """2 of 8 teachers drift, the one ensemble does not, 8 S_T students of which 7 share their
    teacher's verdict: Clopper-Pearson 2/8 is 0.0319-0.6509; the ensemble against the teachers is
    Fisher's [[0, 1], [2, 6]], p 1 (one model can do no better than 1/9, [[0, 1], [8, 0]])."""
    from kdcg.analysis import drift_rule

    def model(name, family, drifts):
        return drift_rule.ModelDrift(name, family, 4, 4 if drifts else 0, 0, {}, drifts)

    teachers = [model(f"teacher-{s}", "T", s in (2, 4)) for s in range(1, 9)]
    students = [model(f"student-st_ei_ft_faa-{s}", "S_T", s in (2, 4, 5)) for s in range(1, 9)]
    rows = {r["family"]: r for r in drift_rule.family_summary(
        teachers + [model("ensemble", "E", False)] + students + [model("student-se_ei_ft_faa", "S_E", True)])}
    t = rows["T"]
    assert (t["models"], t["drifting_models"], t["fisher_p_vs_teachers"]) == (8, 2, None)
    assert t["ci95_low"] == pytest.approx(0.0319, abs=1e-4) and t["ci95_high"] == pytest.approx(0.6509, abs=1e-4)
    assert rows["E"]["fisher_p_vs_teachers"] == pytest.approx(1.0)
    assert (rows["E"]["ci95_low"], rows["E"]["ci95_high"]) == pytest.approx((0.0, 0.975))
    assert rows["S_T"]["same_verdict_as_own_teacher"] == "7 of 8"
    # teachers 2, 4 drift, students 2, 4, 5: [[2, 0], [1, 5]], one-sided p = C(3,2) C(5,0) / C(8,2) = 3/28
    assert rows["S_T"]["fisher_p_follows_own_teacher"] == pytest.approx(3 / 28)
    agreeing = [model(f"student-st_ei_ft_faa-{s}", "S_T", s <= 5) for s in range(1, 9)]
    mirror = drift_rule.family_summary([model(f"teacher-{s}", "T", s <= 5) for s in range(1, 9)] + agreeing)
    assert mirror[1]["fisher_p_follows_own_teacher"] == pytest.approx(1 / 56)  # the main study's 8 of 8
    all_drift = [model(f"teacher-{s}", "T", True) for s in range(1, 9)]
    p = drift_rule.family_summary(all_drift + [model("ensemble", "E", False)])[1]["fisher_p_vs_teachers"]
    assert p == pytest.approx(1 / 9)


def test_the_drift_rules_markdown_gives_each_models_replica_figures_and_st_pairs(tmp_path):
    """Two replicas per model with known figures: ranges over replicas, the mean first → last TAE
    to all-atom, an unstable replica's missing figures left out, epochs from training.csv beside
    stability.csv, and the single-teacher student beside its own teacher."""
    import csv

    from kdcg.analysis import drift_rule
    from kdcg.cli import main

    header = ["model", "family", "variant", "seed", "replica", "status", "t_equilibration_detected_ps",
              "cdf_drift_Cho", "cdf_tae_first_last_Cho", "cdf_tae_noise_Cho", "cdf_tae_aa_first_Cho",
              "cdf_tae_aa_last_Cho"]
    reps = {
        "teacher-1": [("stable", 10.0, True, 0.8, 0.1, 0.3, 1.1), ("stable", 40.0, True, 0.6, 0.12, 0.5, 0.9)],
        "student-st_ei_ft_faa-1": [("stable", 0.0, False, 0.1, 0.1, 0.3, 0.3),
                                   ("unstable", "", "", "", "", "", "")],
    }
    with open(tmp_path / "stability.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for model, rs in reps.items():
            family, variant, seed = classify(model)
            for r, figures in enumerate(rs, 1):
                w.writerow([model, family, variant, seed, r, *figures])
    (tmp_path / "training.csv").write_text("model,epochs\nteacher-1,177\nstudent-st_ei_ft_faa-1,500\n")
    main(["drift-rule", "--stability", str(tmp_path / "stability.csv"), "--species", "Cho", "--out",
          str(tmp_path / "rule.csv")])
    lines = (tmp_path / "rule.md").read_text().splitlines()
    assert lines[2] == "| teacher-1 | 177 | 2 | 0 | 2 | 0.60–0.80 | 0.10–0.12 | 0.40 → 1.00 | 10–40 | yes |"
    assert lines[3] == "| student-st_ei_ft_faa-1 | 500 | 2 | 1 | 0 | 0.10 | 0.10 | 0.30 → 0.30 | 0 | no |"
    assert lines[-1] == "| student-st_ei_ft_faa-1 | no | teacher-1 | yes | no |"
    rows = drift_rule.read_stability(tmp_path / "stability.csv")
    models = drift_rule.model_drift(rows, ["Cho"], 2, tmp_path / "stability.csv")
    assert "| teacher-1 | — |" in drift_rule.markdown(rows, models, ["Cho"])  # no training.csv: no epochs

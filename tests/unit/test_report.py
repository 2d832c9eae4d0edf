"""Tables and figures list every model: a variant whose replicas all blew up keeps its rows,
its unstable count and its legend entry."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from conftest import REPO
from kdcg.analysis import distributions as analysis
from kdcg.report import figures
from kdcg.report import tables as report


def _frames(rng, n_frames=3, n=12, edge=16.0):
    return rng.uniform(0, edge, size=(n_frames, n, 3)), np.tile(np.eye(3) * edge, (n_frames, 1, 1))


def test_an_all_unstable_variant_stays_in_every_summary(tmp_path):
    rng = np.random.default_rng(0)
    acfg = dict(yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())["analysis"])
    acfg.update(adf_triplets=[["A", "A", "A"]], adf_cutoffs_A=[6.0], cdf_windows=2)
    species, names = np.arange(12) % 3 + 1, ["A", "B", "C"]
    R, cells = _frames(rng)
    reference = {"species_names": names, **analysis.distributions(R, cells, species, names, acfg)}
    (tmp_path / "reference.json").write_text(json.dumps(reference))
    results = tmp_path / "results"
    for model, stable in (("teacher-1", True), ("student-se_ei_ft", False)):
        for r in (1, 2):
            folder = results / "md" / model / f"replica-{r}"
            folder.mkdir(parents=True)
            res = {"model": model, "replica": r, "status": "stable" if stable else "unstable", "step": 100 if stable else 40,
                   "time_ps": 0.2 if stable else 0.08, "reason": None if stable else "temperature 5000 K above ...",
                   "ns_per_day": 1.0, "ms_per_step": 10.0}
            (folder / "result.json").write_text(json.dumps(res))
            (folder / "thermo.csv").write_text("step,time_ps,potential_kcal_mol\n0,0.0,-1.0\n50,0.1,-1.1\n")
            ana = {"model": model, "replica": r, "status": res["status"]}
            if stable:
                Rr, cr = _frames(rng)
                dist = analysis.distributions(Rr, cr, species, names, acfg, np.arange(3) * 0.05)
                ana.update(dist, tae=analysis.tae_against(dist, reference),
                           equilibration={"t_detected_ps": 0.0 if r == 1 else 0.15, "t_configured_ps": 0.1,
                                          "t_used_ps": 0.1, "equilibrated": r == 1})
            (folder / "analysis.json").write_text(json.dumps(ana))
    data = report.collect(results, ["teacher-1", "student-se_ei_ft"])
    out = report.tables(data, tmp_path / "no-aa.tsv", tmp_path / "tables", reference)
    with open(tmp_path / "tables" / "tae_summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    unstable = [r for r in rows if r["variant"] == "se_ei_ft"]
    n_keys = sum(len(reference[q]) for q in analysis.QUANTITIES)
    assert len(unstable) == n_keys == len([r for r in rows if r["variant"] == "teacher"])
    assert all(r["tae_mean"] == "" and r["n_replicas"] == "0" and (r["n_unstable"], r["n_total"]) == ("2", "2")
               for r in unstable)
    teacher = [r for r in rows if r["variant"] == "teacher"]
    assert all(float(r["tae_mean"]) > 0 and r["n_replicas"] == "2" and r["n_unstable"] == "0"
               and r["n_not_equilibrated"] == "1" for r in teacher)
    with open(tmp_path / "tables" / "tae.csv") as fh:
        tae = list(csv.DictReader(fh))
    assert [(r["model"], r["replica"], r["status"]) for r in tae if r["status"] == "unstable"] == \
        [("student-se_ei_ft", "1", "unstable"), ("student-se_ei_ft", "2", "unstable")]
    # stability.csv: beside each drift flag, the numbers it was judged on and each window's
    # distance from the all-atom CDF; an unstable replica has none of them
    with open(tmp_path / "tables" / "stability.csv") as fh:
        stab = {(r["model"], r["replica"]): r for r in csv.DictReader(fh)}
    for r in (1, 2):
        ana = json.loads((results / "md" / "teacher-1" / f"replica-{r}" / "analysis.json").read_text())
        row, windows = stab[("teacher-1", str(r))], ana["cdf_windows"]["windows"]
        assert len(windows) == 2
        for s in names:
            dr = ana["grids"]["cdf"]["dr_A"]
            drift = ana["cdf_windows"]["drift"][s]
            assert float(row[f"cdf_tae_first_last_{s}"]) == pytest.approx(drift["tae_first_last"], abs=5e-3)
            assert float(row[f"cdf_tae_noise_{s}"]) == pytest.approx(drift["tae_noise"], abs=5e-3)
            aa = np.asarray(reference["cdf"][s])
            for col, w in (("first", windows[0]), ("last", windows[1])):
                expected = np.abs(np.asarray(w["cdf"][s]) - aa).sum() * dr
                assert float(row[f"cdf_tae_aa_{col}_{s}"]) == pytest.approx(expected, rel=5e-3, abs=1e-3)
    assert all(stab[("student-se_ei_ft", str(r))][f"cdf_tae_aa_last_{s}"] == "" for r in (1, 2) for s in names)
    labels = figures.fig_tae(data, out["summary"], reference, "rdf", tmp_path / "tae_rdf.png")
    assert labels == ["T\n(1/2 not eq.)", "S_E ei_ft\n(2/2 unstable)"]
    assert (tmp_path / "tae_rdf.png").read_bytes()[:4] == b"\x89PNG"
    # every figure is made, the all-unstable family included (a row saying so in cdf_time.png)
    report.summarize(results, ["teacher-1", "student-se_ei_ft"], tmp_path / "reference.json", tmp_path / "no-aa.tsv",
                     tmp_path / "t2", tmp_path / "f2")
    for name in report.FIGURES:
        assert (tmp_path / "f2" / name).read_bytes()[:4] == b"\x89PNG", name


def test_the_front_page_says_what_each_scale_can_show():
    import yaml

    from conftest import REPO
    from kdcg.report.front_page import what_it_shows

    def load(name):
        return yaml.safe_load((REPO / name).read_text())

    default = what_it_shows(load("config/config.yaml"))  # 3 ps, at most 20 epochs
    assert "3 ps of CG MD" in default and "cannot show them" in default and "at most 20 epochs" in default
    study_cfg = load("config/study.yaml")
    study = what_it_shows(study_cfg)
    assert "100 ps of CG MD, into the 100-300 ps" in study and "4 replicas" in study and "findings.csv" in study
    study_40ps = what_it_shows({**study_cfg, "md": {**study_cfg["md"], "n_samples": 30}})
    assert "40 ps of CG MD, the onset" in study_40ps
    assert "long enough for the instabilities" in what_it_shows(load("config/paper.yaml"))


def test_table_numbers_carry_the_digits_they_mean():
    """A spread to two significant digits and its mean to the same decimals; lone values to three
    significant digits, p-values to two (the ns/day SD once printed as 0.000139945)."""
    header = ["name", "ns_per_day_mean", "ns_per_day_std", "tae_mean", "tae_std", "a_mean", "a_se", "p_value", "tae",
              "n", "force_r2_vs_aa"]
    row = ["x", 30.4432, 0.000139945, 2.43548, 0.355399, 1.43184, None, 0.12743, 1.78698, 8, 0.128487]
    assert report.format_row(header, row) == ["x", "30.44320", "0.00014", "2.44", "0.36", "1.43", "", "0.13", "1.79", 8,
                                              "0.128"]
    assert report.format_row(["tae_mean", "tae_std"], [12.34, 0.0]) == ["12.3", "0"]
    assert report.format_row(["tae_mean", "tae_std"], [1234.5, 25.0]) == ["1234", "25"]
    assert report.format_row(["p_value", "value"], [4.123e-6, -0.0123456]) == ["4.1e-06", "-0.0123"]

"""kdcg.analysis.power: the planning figures of the main study, against known answers."""

import csv
import math

import numpy as np
import pytest

from kdcg.analysis import power
from kdcg.errors import InputError


def test_a_test_of_no_difference_rejects_at_its_size():
    assert power.prediction_interval_power(0.0, 6) == pytest.approx(0.05, abs=1e-9)
    assert power.two_sample_power(0.0, 10) == pytest.approx(0.05, abs=1e-9)
    assert power.seeds_differ_power(0.0, 1.0, 4, 5) == pytest.approx(0.05, abs=1e-9)


def test_two_sample_power_matches_cohens_table():
    # Cohen (1988), Table 2.4.1: d = 1.0 needs 17 per group and d = 0.5 needs 64 for 80 % (alpha 0.05, two-sided)
    assert power.two_sample_power(1.0, 17) == pytest.approx(0.807, abs=0.002)
    assert power.smallest(lambda n: power.two_sample_power(1.0, n), 2) == 17
    assert power.smallest(lambda n: power.two_sample_power(0.5, n), 2) == 64


def test_the_prediction_interval_power_tends_to_its_limit():
    for d in (0.5, 1.5, 3.0):
        assert power.prediction_interval_power(d, 20_000) == pytest.approx(power.prediction_interval_limit(d), abs=2e-3)
    # |Z + 0.5| > 1.96: 0.0791; one model never resolves half an SD, however many teachers
    assert power.prediction_interval_limit(0.5) == pytest.approx(0.0791, abs=1e-4)
    assert power.smallest(lambda k: power.prediction_interval_power(0.5, k), 2) is None
    # three SDs apart the limit is 0.85, barely above 80 %: many teachers; four SDs apart a few suffice
    assert power.prediction_interval_limit(3.0) == pytest.approx(0.8508, abs=1e-4)
    assert power.smallest(lambda k: power.prediction_interval_power(3.0, k), 2) in range(15, 40)
    assert power.smallest(lambda k: power.prediction_interval_power(4.0, k), 2) in range(4, 9)


def test_fisher_power_on_tables_counted_by_hand():
    # every teacher drifts, no ensemble does: [[2, 0], [0, 2]] has p = 1/3, [[4, 0], [0, 4]] p = 2/70
    assert power.fisher_power(1.0, 0.0, 2) == 0.0
    assert power.fisher_power(1.0, 0.0, 4) == pytest.approx(1.0)
    # equal fractions: Fisher's test is conservative, below its size
    assert power.fisher_power(0.5, 0.5, 10) <= 0.05


def test_mirror_models_needed_by_fishers_z():
    # 3 + ((1.6449 + 0.8416) / atanh 0.5)^2 = 23.49
    assert power.mirror_models_needed(0.5) == 24
    assert power.mirror_models_needed(-0.2) is None


def _write_tae(path, teacher_means, ensemble_mean, replica_sd=0.01):
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "family", "variant", "seed", "replica", "status", "quantity", "key", "tae"])
        models = [(f"teacher-{i + 1}", "T", "teacher", i + 1, m) for i, m in enumerate(teacher_means)]
        models.append(("ensemble", "E", "ensemble", "", ensemble_mean))
        for name, family, variant, seed, mean in models:
            for replica in range(1, 5):
                value = mean + replica_sd * rng.standard_normal()
                for key in ("Cho-Cho", "Cl-Cl"):  # two keys with the replica's value: the mean over keys is it
                    w.writerow([name, family, variant, seed, replica, "stable", "rdf", key, f"{value:.6f}"])


def test_an_ensemble_inside_its_teachers_spread_is_never_resolved(tmp_path):
    _write_tae(tmp_path / "tae.csv", [0.3, 1.0, 0.35, 1.1], 0.69)
    rows = {r["design"]: r for r in power.plan(power.read_scores(tmp_path / "tae.csv")) if r["finding"] == "2"}
    pi = rows["1 ensemble vs k teachers (prediction interval)"]
    assert pi["models_now"] == 4 and abs(pi["d"]) < 0.1
    assert pi["models_needed"] is None and "no number resolves it" in pi["note"]
    seeds = next(r for r in power.plan(power.read_scores(tmp_path / "tae.csv")) if r["finding"] == "1")
    assert seeds["power_now"] > 0.99  # the seed means differ by 35 replica SDs


def test_an_ensemble_far_below_its_teachers_needs_few(tmp_path):
    _write_tae(tmp_path / "tae.csv", [1.0, 1.1, 0.95, 1.05], 0.2)
    row = next(r for r in power.plan(power.read_scores(tmp_path / "tae.csv"))
               if r["design"].startswith("1 ensemble"))
    assert row["d"] > 10 and row["models_needed"] == 3  # df 1 at k = 2: t_crit 12.7
    assert math.isclose(row["effect"], 1.025 - 0.2, abs_tol=0.02)


def test_a_table_that_is_not_tae_csv_is_named(tmp_path):
    (tmp_path / "tae.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="tae.csv"):
        power.read_scores(tmp_path / "tae.csv")

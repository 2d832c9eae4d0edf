"""The numbers behind the paper's figures: energy agreement with per-species offsets removed,
the AA sampling-noise baseline, per-seed TAE, drift verdicts, and the end-of-run snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO
from kdcg.analysis import distributions as analysis
from kdcg.report import figures
from kdcg.training.metrics import offset_free_energy_agreement, per_species_centred, regression


def test_per_species_energy_offsets_do_not_count():
    rng = np.random.default_rng(1)
    species = np.array([1, 1, 2, 2, 2, 3])
    label = rng.normal(size=(5, 6))
    shifted = label + np.array([0, 10.0, -3.0, 7.5])[species]  # a constant per species
    out = offset_free_energy_agreement(shifted, label, shifted.sum(1), label.sum(1), species)
    assert out["bead_energies"]["r2"] == pytest.approx(1.0) and out["bead_energies"]["mae"] == pytest.approx(0.0, abs=1e-12)
    assert out["energy"]["r2"] == pytest.approx(1.0) and out["n_frames"] == 5
    assert regression(shifted, label)["r2"] < 0  # the plain R^2 is ruined by the offsets
    # each species' mean is removed over all its beads and frames
    np.testing.assert_allclose(per_species_centred(shifted, species)[:, species == 2].mean(), 0.0, atol=1e-12)
    noisy = label + rng.normal(scale=0.5, size=label.shape)
    assert 0 < offset_free_energy_agreement(noisy, label, noisy.sum(1), label.sum(1), species)["bead_energies"]["r2"] < 1


def _acfg():
    acfg = dict(yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())["analysis"])
    acfg.update(adf_triplets=[["A", "A", "A"]], adf_cutoffs_A=[6.0], cdf_windows=2)
    return acfg


def test_sampling_noise_is_the_tae_between_the_halves_of_the_frames():
    rng = np.random.default_rng(2)
    L, species = 16.0, np.arange(24) % 2 + 1
    half = rng.uniform(0, L, size=(3, 24, 3))
    cells = np.tile(np.eye(3) * L, (6, 1, 1))
    data = {"R": np.concatenate([half, half]), "cell": cells, "Z": np.tile(species, (6, 1)), "species_names": ["A", "B"]}
    same = analysis.sampling_noise(data, _acfg())
    assert same["n_frames"] == [3, 3]
    assert all(v == pytest.approx(0.0, abs=1e-12) for q in analysis.QUANTITIES for v in same[q].values())
    data["R"] = rng.uniform(0, L, size=(6, 24, 3))
    other = analysis.sampling_noise(data, _acfg())
    first = analysis.distributions(data["R"][:3], cells[:3], species, ["A", "B"], _acfg())
    second = analysis.distributions(data["R"][3:], cells[3:], species, ["A", "B"], _acfg())
    assert other["rdf"]["A-B"] == pytest.approx(analysis.tae_against(first, second)["rdf"]["A-B"]) and other["rdf"]["A-B"] > 0


def _replica(model, replica, family, variant, seed, tae=None, drift=None, status="stable"):
    ana = {"tae": {"rdf": {"A-B": tae}} if tae is not None else {}}
    if drift is not None:
        ana["cdf_windows"] = {"drift": {"A": {"drifting": drift, "tae_first_last": 0.1}}, "windows": []}
    return {"model": model, "replica": replica, "family": family, "variant": variant, "seed": seed,
            "result": {"status": status}, "analysis": ana}


def test_per_seed_tae_and_drift_verdicts_count_every_replica():
    reps = [_replica("teacher-1", 1, "T", "teacher", 1, 2.0, False), _replica("teacher-1", 2, "T", "teacher", 1, 4.0, True),
            _replica("teacher-2", 1, "T", "teacher", 2, None, None, "unstable"),
            _replica("teacher-2", 2, "T", "teacher", 2, 1.0, False)]
    stats = figures.per_model_tae({"replicas": reps}, "rdf", "A-B", ["teacher-1", "teacher-2"])
    assert stats[0] == pytest.approx((3.0, np.std([2.0, 4.0], ddof=1), 2, 2))
    assert stats[1] == (1.0, 0.0, 1, 2)
    assert figures.drift_verdicts(reps, "A") == {"drifting": 1, "steady": 2, "no_cdf": 1, "total": 4}


def test_energy_agreement_is_averaged_over_seeds_per_variant():
    def m(r2_bead, r2_e):
        return {"test_energies_vs_teacher_offset_free": {"bead_energies": {"r2": r2_bead}, "energy": {"r2": r2_e}}}
    data = {"metrics": {"teacher-1": {}, "student-st_ei_ft-1": m(0.8, 0.5), "student-st_ei_ft-2": m(0.6, 0.7),
                        "student-se_ei_ft": m(0.9, 0.95), "student-se_ft_faa": {}}}
    rows = {r["variant"]: r for r in figures.energy_agreement(data)}
    assert rows["st_ei_ft"]["bead_r2"] == pytest.approx((0.7, np.std([0.8, 0.6], ddof=1)))
    assert rows["st_ei_ft"]["energy_r2"][0] == pytest.approx(0.6) and rows["se_ei_ft"]["bead_r2"] == (0.9, 0.0)
    assert rows["se_ft_faa"]["n_with_metrics"] == 0 and np.isnan(rows["se_ft_faa"]["bead_r2"][0])
    assert "teacher" not in rows


def test_snapshot_is_the_last_frame_wrapped_into_the_box(tmp_path):
    L = 10.0
    folder = tmp_path / "replica-1"
    folder.mkdir()
    frames = [np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), np.array([[11.0, -1.0, 3.0], [4.0, 5.0, 25.5]])]
    text = ""
    for k, x in enumerate(frames):
        text += (f"ITEM: TIMESTEP\n{k * 500}\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n"
                 f"0 {L}\n0 {L}\n0 {L}\nITEM: ATOMS id type x y z\n")
        text += "".join(f"{i + 1} {i + 1} {p[0]} {p[1]} {p[2]}\n" for i, p in enumerate(x))
    (folder / "trajectory.lammpstrj").write_text(text)
    replica = {"model": "teacher-1", "replica": 1, "folder": folder, "result": {"status": "stable", "timestep_fs": 2.0}}
    frame = figures.last_frame(replica, ["A", "B"])
    np.testing.assert_allclose(frame["R"], [[1.0, 9.0, 3.0], [4.0, 5.0, 5.5]], atol=1e-4)
    assert frame["species"].tolist() == [1, 2] and frame["time_ps"] == pytest.approx(1.0)
    titles = figures.fig_snapshots({"replicas": [{**replica, "family": "T", "variant": "teacher", "seed": 1}]}, ["A", "B"],
                                   tmp_path / "snapshots.png")
    assert titles == ["teacher-1 replica 1, t = 1.0 ps (stable)"]
    assert (tmp_path / "snapshots.png").read_bytes()[:4] == b"\x89PNG"


def test_tae_axes_end_above_every_bar_and_its_error_bar():
    """A bar far above the others (a collapsed variant) and its error bar stay inside the axes."""
    from kdcg.report.figures import _tae_axes, plt

    fig, ax = plt().subplots()
    means, stds = np.array([1.0, 4.08, 0.9]), np.array([0.1, 0.06, np.nan])
    ax.bar(np.arange(3), means, yerr=stds)
    reference = {"sampling_noise_tae": {"rdf": {"Cho-Cho": 0.62}}}
    _tae_axes(ax, reference, "rdf", "Cho-Cho", np.arange(3), ["T", "S_E", "E"], means + stds)
    bottom, top = ax.get_ylim()
    assert bottom == 0.0 and top == pytest.approx(1.18 * 4.14)
    plt().close(fig)


def test_the_time_resolved_cdf_figure_shows_a_drifting_replica_where_one_drifts(tmp_path):
    """Per family the replica shown is the one drifting furthest, not the first one."""
    reference = {"cdf": {"A": [0.0, 1.0, 0.0]}, "grids": {"cdf": {"r_A": [1.0, 2.0, 3.0]}}}

    def rep(model, r, family, variant, seed, drifting, tae):
        window = {"t_start_ps": 0.0, "t_end_ps": 1.0, "cdf": {"A": [0.0, 1.0, 0.0]}}
        return {"model": model, "replica": r, "family": family, "variant": variant, "seed": seed,
                "result": {"status": "stable"},
                "analysis": {"cdf_windows": {"windows": [window, window],
                                             "drift": {"A": {"drifting": drifting, "tae_first_last": tae}}}}}

    reps = [rep("teacher-1", 1, "T", "teacher", 1, False, 0.1), rep("teacher-2", 1, "T", "teacher", 2, True, 0.6),
            rep("teacher-2", 2, "T", "teacher", 2, True, 0.9), rep("ensemble", 1, "E", "ensemble", None, False, 0.2)]
    titles = figures.fig_cdf_time({"replicas": reps}, reference, tmp_path / "cdf_time.png")
    assert "shown: teacher-2 r2, DRIFTING (TAE first-last 0.90)" in titles[0] and "drifting in 2 of 3" in titles[0]
    assert "shown: ensemble r1, steady" in titles[1]
    assert (tmp_path / "cdf_time.png").read_bytes()[:4] == b"\x89PNG"

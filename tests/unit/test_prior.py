"""The repulsive prior's taper distances: where each pair's AA RDF reaches the threshold, by the
paper's first-bin rule and by the fit of the RDF's rising edge, and how far a tenth of the frames
moves each."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from kdcg.errors import InputError
from kdcg.models.prior import edge_fit_taper, pair_taper, poisson_log_linear_fit, taper_distances, write_prior
from kdcg.cg.structure import pair_histogram

FIRST_ABOVE = {"taper_estimator": "first_above", "rdf_threshold": 0.01, "rdf_bin_A": 0.05,
               "edge_fit_g_top": 0.5, "edge_fit_window_A": 1.5}
EDGE_FIT = dict(FIRST_ABOVE, taper_estimator="edge_fit")


def test_taper_on_a_lattice_is_the_bin_of_the_nearest_neighbour_distance():
    spacing, shift = 4.0, 1.5
    grid = np.stack(np.meshgrid(*[np.arange(4) * spacing] * 3, indexing="ij"), -1).reshape(-1, 3)
    R = np.concatenate([grid, grid + [shift, 0.0, 0.0]])[None]
    Z = np.array([1] * 64 + [2] * 64)
    cells = np.diag([4 * spacing] * 3)[None]
    taper = taper_distances(R, cells, Z, ["A", "B"], FIRST_ABOVE, r_max_A=8.0)
    # bin centres: the bin [4.00, 4.05) holds the like pairs, [1.50, 1.55) the unlike ones
    np.testing.assert_allclose(taper["taper_A"], [[4.025, 1.525], [1.525, 4.025]], atol=1e-9)
    assert taper["tenths_max_shift_A"] is None  # one frame: no tenths


def test_a_pair_that_never_meets_is_named():
    R = np.array([[[1.0, 1.0, 1.0], [2.0, 1.0, 1.0], [9.0, 9.0, 9.0]]])
    with pytest.raises(InputError, match="A-B never exceeds 0.01 below 3.00 A"):
        taper_distances(R, np.diag([20.0] * 3)[None], np.array([1, 1, 2]), ["A", "B"], FIRST_ABOVE, r_max_A=3.0)


def test_poisson_fit_recovers_exact_log_linear_counts():
    x = np.linspace(-1.5, 0.0, 31)
    ideal = np.linspace(50.0, 80.0, 31)
    a, b = poisson_log_linear_fit(x, ideal * np.exp(-0.7 + 4.0 * x), ideal)
    assert (a, b) == pytest.approx((-0.7, 4.0), abs=1e-8)


# An analytic rising edge: g(r) = exp(kappa (r - r_e)) below r_e, 1 above, so g = 0.01 at
# r_e + ln(0.01) / kappa. Pair counts of every frame are Poisson draws around ideal * g.
R_E_A, KAPPA_PER_A = 4.0, 5.0
EXACT_TAPER_A = R_E_A + np.log(0.01) / KAPPA_PER_A  # 3.079 A


def analytic_edge_counts(n_beads: int, n_frames: int, box_A: float = 26.22, seed: int = 0):
    bins = np.arange(0.0, 8.0 + 0.025, 0.05)
    r = 0.5 * (bins[1:] + bins[:-1])
    ideal = n_beads * (n_beads - 1) / 2 / box_A ** 3 * 4 / 3 * np.pi * (bins[1:] ** 3 - bins[:-1] ** 3)
    g = np.where(r < R_E_A, np.exp(KAPPA_PER_A * (r - R_E_A)), 1.0)
    ideal = np.repeat(ideal[None], n_frames, 0)
    return r, np.random.default_rng(seed).poisson(ideal * g).astype(float), ideal


def test_edge_fit_taper_stays_within_a_tenth_of_an_angstrom_when_only_a_tenth_of_the_frames_is_used():
    # 200 beads of one species (the study box's urea count doubled), 500 frames (the study's):
    # a g = 0.01 bin holds a handful of pairs, so the first-bin rule follows the closest ones
    r, counts, ideal = analytic_edge_counts(200, 500)
    taper, source, shift = pair_taper(r, counts, ideal, EDGE_FIT)
    assert source == "edge_fit"
    assert taper == pytest.approx(EXACT_TAPER_A, abs=0.03)
    assert shift < 0.1
    for k in range(10):
        tenth, _, _ = pair_taper(r, counts[k::10], ideal[k::10], EDGE_FIT)
        assert abs(tenth - taper) <= shift + 1e-12
    # the same frames by the paper's rule: the test above would fail
    _, source, rule_shift = pair_taper(r, counts, ideal, FIRST_ABOVE)
    assert source == "first_above"
    assert rule_shift > 0.1


def test_edge_fit_on_bead_coordinates_finds_the_analytic_edge():
    # one A-B pair per frame, its distance drawn from r^2 g(r) up to half the 10 A box
    rng = np.random.default_rng(1)
    n, box, kappa = 20000, 10.0, 6.0
    grid = np.linspace(0.0, box / 2, 100001)[1:]
    density = grid ** 2 * np.where(grid < R_E_A, np.exp(kappa * (grid - R_E_A)), 1.0)
    cdf = np.cumsum(density)
    r = np.interp(rng.random(n), cdf / cdf[-1], grid)
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    a = rng.random((n, 3)) * box
    R = np.stack([a, (a + r[:, None] * direction) % box], 1)
    cells = np.repeat(np.diag([box] * 3)[None], n, 0)
    # measured g = V / (4 pi int r^2 g dr) * g: the normalisation shifts where g reaches 0.01
    scale = box ** 3 / (4 * np.pi * cdf[-1] * (grid[1] - grid[0]))
    exact = R_E_A + np.log(0.01 / scale) / kappa
    bins_r, counts, ideal = pair_histogram(R, cells, np.array([1, 0]), np.array([0, 1]), box / 2, 0.05)
    assert edge_fit_taper(bins_r, counts.sum(0), ideal.sum(0), 0.01, 0.5, 1.5) == pytest.approx(exact, abs=0.05)


def test_an_edge_too_sparse_to_fit_falls_back_to_the_first_bin_rule_and_says_so():
    r = np.arange(0.025, 8.0, 0.05)
    ideal = np.full(len(r), 10.0)
    counts = np.where(r > 4.0, 10.0, 0.0)
    counts[np.argmin(abs(r - 2.02))] = 1.0  # a step and one stray pair below the fit window: nothing to fit
    taper, source, shift = pair_taper(r, counts[None], ideal[None], EDGE_FIT)
    assert taper == pytest.approx(2.025)
    assert source.startswith("first_above (edge fit failed: fewer than two bins")
    assert shift is None


def test_prior_file_records_the_estimator_and_the_tenths_check(tmp_path, caplog):
    from conftest import SMALL_TRAINING_CONFIG, write_pair_dataset

    write_pair_dataset(tmp_path / "dataset.npz")
    with caplog.at_level(logging.INFO, logger="kdcg.models.prior"):
        write_prior(tmp_path / "dataset.npz", SMALL_TRAINING_CONFIG, tmp_path / "prior.json")
    prior = json.loads((tmp_path / "prior.json").read_text())
    assert prior["taper_estimator"] == "edge_fit"
    assert len(prior["taper_source"]) == len(prior["taper_A"]) == len(prior["species_names"]) == 3
    shift = np.array(prior["taper_tenths_max_shift_A"], dtype=float)  # 12 frames: tenths of 1-2 frames
    assert shift.shape == (3, 3) and np.all(shift >= 0)
    for a, b in ((0, 0), (0, 1), (2, 2)):
        pair = f"{'ABC'[a]}-{'ABC'[b]}"
        assert f"prior taper {pair}: {prior['taper_A'][a][b]:.2f} A ({prior['taper_source'][a][b]}" in caplog.text


def test_a_tenth_without_a_taper_makes_the_shift_unknown_not_small():
    # pairs in the first frame only: the other nine tenths never reach the threshold
    r = np.arange(0.025, 8.0, 0.05)
    ideal = np.full((10, len(r)), 1.0)
    counts = np.zeros((10, len(r)))
    counts[0, r > 3.0] = 1.0
    taper, _, shift = pair_taper(r, counts, ideal, FIRST_ABOVE)
    assert taper == pytest.approx(3.025)
    assert np.isnan(shift)

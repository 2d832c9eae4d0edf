"""The repulsive prior's parameters (the paper's Eq. 2), computed once per dataset.

The taper distance of a species pair is where the pair's AA RDF reaches ``prior.rdf_threshold``
(0.01): the lower edge of the distances the all-atom frames sample, so that the prior acts only
where the data are (nearly) silent. Two estimators (``prior.taper_estimator``):

- ``first_above``, the paper's rule: the first bin whose g exceeds the threshold. At g = 0.01 a
  bin of a laptop dataset holds less than one pair, so the rule returns the closest pair ever
  sampled, which moves inward as frames are added (config/README.md has the measurements).
- ``edge_fit``: g is fitted on its well-sampled rising edge (from ``edge_fit_window_A`` below the
  first r where the smoothed g reaches ``edge_fit_g_top`` up to that r) with a locally linear
  potential of mean force, ln g = a + b r (a Poisson likelihood of the pair counts, so empty bins
  count), and solved for g = threshold. The fit uses hundreds of pairs instead of the closest one,
  so its answer does not drift with the frame count; where the potential steepens inward, the
  straight-line extrapolation errs inward (towards the prior), not into the sampled region.
  Where the edge holds too few pairs for a fit, the pair falls back to ``first_above`` and the
  log says so.

Every prior also records how far the taper of each pair moves when only a tenth of the frames
(every 10th) is used: the sample-size check of the dataset at hand.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from kdcg.errors import InputError
from kdcg.files import read_json
from kdcg.cg.mapping import load_dataset
from kdcg.provenance import check_same_dataset, dataset_fingerprint
from kdcg.cg.structure import pair_histogram

log = logging.getLogger(__name__)

EDGE_SMOOTHING_A = 0.25  # running window over which g is smoothed to find the top of the fit window
TENTHS_SHIFT_WARNING_A = 0.1  # a taper that a tenth of the frames moves further than this is reported as unsteady


def first_contact(r: np.ndarray, g: np.ndarray, threshold: float) -> float:
    """The first r (A) at which g(r) exceeds the threshold."""
    above = np.flatnonzero(g > threshold)
    if len(above) == 0:
        raise ValueError(f"g(r) never exceeds {threshold}")
    return float(r[above[0]])


def poisson_log_linear_fit(x: np.ndarray, counts: np.ndarray, ideal: np.ndarray) -> tuple[float, float]:
    """(a, b) maximising the Poisson likelihood of counts ~ ideal * exp(a + b x).

    Newton's method with step halving; the log-likelihood is concave in (a, b), so it converges
    from any start. Needs counts in at least two distinct bins (else the slope is not determined)."""
    if np.count_nonzero(counts) < 2:
        raise ValueError("fewer than two bins of the edge hold pairs")
    design = np.stack([np.ones_like(x), x], 1)
    p = np.array([np.log(counts.sum() / ideal.sum()), 0.0])

    def neg_log_likelihood(q):
        eta = design @ q
        return float((ideal * np.exp(eta) - counts * eta).sum())

    value = neg_log_likelihood(p)
    for _ in range(100):
        lam = ideal * np.exp(design @ p)
        grad = design.T @ (lam - counts)
        hess = design.T @ (design * lam[:, None])
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-8:
            trial = p - t * step
            trial_value = neg_log_likelihood(trial)
            if trial_value <= value:
                break
            t *= 0.5
        converged = abs(value - trial_value) < 1e-12 * max(1.0, abs(value))
        p, value = trial, trial_value
        if converged or np.abs(t * step).max() < 1e-10:
            break
    return float(p[0]), float(p[1])


def edge_fit_taper(r: np.ndarray, counts: np.ndarray, ideal: np.ndarray, threshold: float, g_top: float,
                   window_A: float) -> float:
    """The r (A) where ln g, fitted linearly on the rising edge of the RDF, equals ln threshold.

    r: bin centres; counts, ideal: pair counts and their ideal-gas expectation per bin (summed over
    frames). The edge runs from window_A below the first r where g smoothed over
    EDGE_SMOOTHING_A reaches g_top, to that r. Raises ValueError when the edge cannot be fitted."""
    dr = float(r[1] - r[0])
    width = max(1, int(round(EDGE_SMOOTHING_A / dr)))
    kernel = np.ones(width)
    with np.errstate(invalid="ignore", divide="ignore"):  # shells without an ideal pair: no g there
        smoothed = np.nan_to_num(np.convolve(counts, kernel, "same") / np.convolve(ideal, kernel, "same"))
    reached = np.flatnonzero(smoothed >= g_top)
    if len(reached) == 0:
        raise ValueError(f"the smoothed g(r) never reaches {g_top}")
    top = int(reached[0])
    low = max(0, top - int(round(window_A / dr)))
    x = r[low:top + 1] - r[top]
    a, b = poisson_log_linear_fit(x, counts[low:top + 1], ideal[low:top + 1])
    if b <= 0:
        raise ValueError("the fitted edge does not rise")
    taper = float(r[top] + (np.log(threshold) - a) / b)
    # a nearly flat fit (few pairs) extrapolates without bound; one window's length beyond the data is the limit
    if not r[top] - 2 * window_A <= taper <= r[top]:
        raise ValueError(f"the fit puts g = {threshold} at {taper:.2f} A, more than a window's length below "
                         f"the edge it was fitted on [{r[low]:.2f}, {r[top]:.2f}] A")
    return taper


def taper_of_pair(r: np.ndarray, counts: np.ndarray, ideal: np.ndarray, prior_cfg: dict) -> tuple[float, str]:
    """(taper A, how it was found) from summed pair counts; ValueError when g never reaches the threshold."""
    threshold = prior_cfg["rdf_threshold"]
    if prior_cfg["taper_estimator"] == "edge_fit":
        try:
            return edge_fit_taper(r, counts, ideal, threshold, prior_cfg["edge_fit_g_top"],
                                  prior_cfg["edge_fit_window_A"]), "edge_fit"
        except ValueError as err:
            fallback = f"first_above (edge fit failed: {err})"
    else:
        fallback = "first_above"
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(ideal > 0, counts / ideal, 0.0)
    return first_contact(r, g, threshold), fallback


def pair_taper(r: np.ndarray, counts: np.ndarray, ideal: np.ndarray, prior_cfg: dict) -> tuple[float, str, float | None]:
    """(taper A, how it was found, tenths' largest shift A) of one species pair.

    counts, ideal: (frames, bins) from ``structure.pair_histogram``. The shift is the largest
    distance between the taper from every 10th frame (ten interleaved subsets) and from all frames:
    None with fewer than 10 frames, NaN where a tenth finds no taper. ValueError when g of all
    frames never reaches the threshold."""
    taper, source = taper_of_pair(r, counts.sum(0), ideal.sum(0), prior_cfg)
    if len(counts) < 10:
        return taper, source, None
    moves = []
    for k in range(10):
        try:
            moves.append(abs(taper_of_pair(r, counts[k::10].sum(0), ideal[k::10].sum(0), prior_cfg)[0] - taper))
        except ValueError:
            moves.append(np.nan)
    return taper, source, float("nan") if np.isnan(moves).any() else float(max(moves))


def taper_distances(R: np.ndarray, cells: np.ndarray, Z: np.ndarray, names: list[str], prior_cfg: dict,
                    r_max_A: float) -> dict:
    """Taper distances (A) of every species pair from the AA frames. Z holds species 1..n per bead.

    Returns (species x species) taper_A, taper_source and tenths_max_shift_A (``pair_taper``;
    None for all with fewer than 10 frames)."""
    n_species = len(names)
    half_box = 0.5 * float(np.min([np.diag(c) for c in cells]))
    r_max = min(r_max_A, half_box)
    taper = np.zeros((n_species, n_species))
    shift = np.zeros((n_species, n_species)) if len(R) >= 10 else None
    source = [[""] * n_species for _ in range(n_species)]
    for a in range(n_species):
        for b in range(a, n_species):
            r, counts, ideal = pair_histogram(R, cells, Z == a + 1, Z == b + 1, r_max, prior_cfg["rdf_bin_A"])
            try:
                taper[a, b], source[a][b], moved = pair_taper(r, counts, ideal, prior_cfg)
            except ValueError:
                raise InputError(None, f"the AA RDF of {names[a]}-{names[b]} never exceeds {prior_cfg['rdf_threshold']} "
                                       f"below {r_max:.2f} A: no taper distance for the repulsive prior") from None
            taper[b, a], source[b][a] = taper[a, b], source[a][b]
            if shift is not None:
                shift[a, b] = shift[b, a] = moved
    return {"taper_A": taper, "taper_source": source, "tenths_max_shift_A": shift}


def prior_from_dataset(data: dict, prior_cfg: dict, r_max_A: float) -> dict:
    """Taper distances from the AA RDFs (up to r_max_A or half the box); strength from the
    mapped forces. Teachers and students share it (``kdcg prior``)."""
    names = [str(s) for s in data["species_names"]]
    tapers = taper_distances(data["R"], data["cell"], np.asarray(data["Z"][0]), names, prior_cfg, r_max_A)
    shift = tapers["tenths_max_shift_A"]
    return {
        "dataset": dataset_fingerprint(data),
        "taper_A": tapers["taper_A"].tolist(),
        "taper_estimator": prior_cfg["taper_estimator"],
        "rdf_threshold": prior_cfg["rdf_threshold"],
        "taper_source": tapers["taper_source"],
        "taper_tenths_max_shift_A": None if shift is None else [[None if np.isnan(v) else float(v) for v in row]
                                                                for row in shift],
        "species_names": names,
        "strength_kcal_mol_A": float(np.abs(data["F"]).mean()),
        "dr_A": prior_cfg["dr_A"],
        "fraction_at_taper": prior_cfg["fraction_at_taper"],
    }


def write_prior(dataset_path: Path, cfg: dict, out: Path) -> dict:
    prior = prior_from_dataset(load_dataset(dataset_path), cfg["prior"], cfg["model"]["dist_hard_max_A"])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(prior, indent=2) + "\n")
    names = prior["species_names"]
    shift = prior["taper_tenths_max_shift_A"]
    for a in range(len(names)):
        for b in range(a, len(names)):
            pair, taper, source = f"{names[a]}-{names[b]}", prior["taper_A"][a][b], prior["taper_source"][a][b]
            moved = shift is not None and shift[a][b] is not None
            moved = f"; a tenth of the frames moves it by up to {shift[a][b]:.2f} A" if moved else ""
            log.info("prior taper %s: %.2f A (%s%s)", pair, taper, source, moved)
            if source.startswith("first_above (edge fit failed"):
                log.warning("prior taper %s: the AA RDF's rising edge holds too few pairs for a fit; the taper is "
                            "the closest sampled distance and will move as frames are added", pair)
            if shift is not None and shift[a][b] is None:
                log.warning("prior taper %s: a tenth of the frames never reaches g = %s; the dataset cannot pin the "
                            "taper", pair, prior["rdf_threshold"])
            elif shift is not None and shift[a][b] > TENTHS_SHIFT_WARNING_A:
                log.warning("prior taper %s: the dataset pins it only to about %.2f A (a tenth of the frames moves it "
                            "that far); more all-atom frames would steady it", pair, shift[a][b])
    log.info("prior strength: %.3f kcal/mol/A", prior["strength_kcal_mol_A"])
    return prior


def read_prior(path: Path, data: dict) -> dict:
    path = Path(path)
    prior = read_json(path, "prior (kdcg prior writes it)")
    if not isinstance(prior, dict) or not {"taper_A", "strength_kcal_mol_A", "dr_A", "fraction_at_taper"} <= set(prior):
        raise InputError(path, "not a kdcg prior (taper_A, strength_kcal_mol_A, dr_A, fraction_at_taper)")
    check_same_dataset(prior.get("dataset"), data, path, "prior")
    return prior

"""The repulsive prior's parameters (the paper's Eq. 2), computed once per dataset.

The taper distance of a species pair (a, b) is a low quantile of the nearest-neighbour
distances in the mapped all-atom frames: the distance below which a fraction q of the a beads
have their nearest b bead (and of the b beads their nearest a bead). A quantile of a
per-bead quantity converges as frames are added; the earlier rule, "the first r where the
AA RDF exceeds 0.01", is set by the single closest pair whenever the dataset is too small to
resolve g = 0.01 and so moved inward as frames were added (up to 0.2 A between 10 % and 100 %
of the default dataset; the quantile moves at most 0.07 A there, tests/test_prior.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import read_json
from .mapping import load_dataset
from .provenance import check_same_dataset, dataset_fingerprint
from .structure import minimum_image

log = logging.getLogger(__name__)


def nearest_neighbour_distances(R: np.ndarray, cells: np.ndarray, mask_a: np.ndarray,
                                mask_b: np.ndarray) -> np.ndarray:
    """Distance (A) from every a bead to its nearest b bead and, for a != b, from every b bead
    to its nearest a bead, in every frame (minimum image, orthorhombic cells)."""
    ia, ib = np.flatnonzero(mask_a), np.flatnonzero(mask_b)
    same = np.array_equal(ia, ib)
    if len(ia) == 0 or len(ib) == 0 or (same and len(ia) < 2):
        raise ValueError("a species pair needs two beads to have a nearest neighbour")
    out = []
    for x, cell in zip(np.asarray(R, dtype=np.float64), np.asarray(cells, dtype=np.float64)):
        d = minimum_image(x[ia][:, None, :] - x[ib][None, :, :], np.diag(cell))
        r = np.sqrt((d * d).sum(-1))
        if same:
            np.fill_diagonal(r, np.inf)
            out.append(r.min(axis=1))
        else:
            out += [r.min(axis=1), r.min(axis=0)]
    return np.concatenate(out)


def taper_distances(R: np.ndarray, cells: np.ndarray, Z: np.ndarray, n_species: int, quantile: float) -> np.ndarray:
    """(species x species) taper distances (A): the ``quantile`` of each pair's nearest-neighbour
    distances. Z holds species 1..n_species per bead."""
    taper = np.zeros((n_species, n_species))
    for a in range(n_species):
        for b in range(a, n_species):
            d = nearest_neighbour_distances(R, cells, Z == a + 1, Z == b + 1)
            taper[a, b] = taper[b, a] = float(np.quantile(d, quantile))
    return taper


def prior_from_dataset(data: dict, prior_cfg: dict) -> dict:
    """Taper distances from the AA frames; strength from the mapped forces. Teachers and students
    share it (``kdcg prior``)."""
    Z = np.asarray(data["Z"][0])
    names = [str(s) for s in data["species_names"]]
    try:
        taper = taper_distances(data["R"], data["cell"], Z, len(names), prior_cfg["nearest_neighbour_quantile"])
    except ValueError as err:
        raise InputError(None, f"no taper distance for the repulsive prior: {err} (species counts "
                               f"{dict(zip(names, np.bincount(Z, minlength=len(names) + 1)[1:].tolist()))})") from None
    return {
        "dataset": dataset_fingerprint(data),
        "taper_A": taper.tolist(),
        "species_names": names,
        "nearest_neighbour_quantile": prior_cfg["nearest_neighbour_quantile"],
        "strength_kcal_mol_A": float(np.abs(data["F"]).mean()),
        "dr_A": prior_cfg["dr_A"],
        "fraction_at_taper": prior_cfg["fraction_at_taper"],
    }


def write_prior(dataset_path: Path, cfg: dict, out: Path) -> dict:
    prior = prior_from_dataset(load_dataset(dataset_path), cfg["prior"])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(prior, indent=2) + "\n")
    names = prior["species_names"]
    for a in range(len(names)):
        for b in range(a, len(names)):
            log.info("prior taper %s-%s: %.2f A", names[a], names[b], prior["taper_A"][a][b])
    log.info("prior strength: %.3f kcal/mol/A", prior["strength_kcal_mol_A"])
    return prior


def read_prior(path: Path, data: dict) -> dict:
    path = Path(path)
    prior = read_json(path, "prior (kdcg prior writes it)")
    if not isinstance(prior, dict) or not {"taper_A", "strength_kcal_mol_A", "dr_A", "fraction_at_taper"} <= set(prior):
        raise InputError(path, "not a kdcg prior (taper_A, strength_kcal_mol_A, dr_A, fraction_at_taper)")
    check_same_dataset(prior.get("dataset"), data, path, "prior")
    return prior

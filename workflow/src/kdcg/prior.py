"""The repulsive prior's parameters (the paper's Eq. 2), computed once per dataset.

The taper distance of a species pair is the first r where the pair's AA RDF exceeds
``prior.rdf_threshold`` (the paper's rule): the lower edge of the distances the all-atom
frames sample, so that the prior acts only where the data are (nearly) silent. On a small
dataset this edge is set by the few closest pairs and moves inward as frames are added; the
robust alternatives measured (a quantile of the nearest-neighbour distances, a sphere-averaged
g threshold, an exponential fit of the rising edge) are either as noisy for the sparse pairs
(Cl-Cl) or sit inside the sampled region, where the prior's steep exponential makes the
first MD step blow up (config/README.md).
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
from .structure import rdf

log = logging.getLogger(__name__)


def first_contact(r: np.ndarray, g: np.ndarray, threshold: float) -> float:
    """The first r (A) at which g(r) exceeds the threshold."""
    above = np.flatnonzero(g > threshold)
    if len(above) == 0:
        raise ValueError(f"g(r) never exceeds {threshold}")
    return float(r[above[0]])


def taper_distances(R: np.ndarray, cells: np.ndarray, Z: np.ndarray, names: list[str], prior_cfg: dict,
                    r_max_A: float) -> np.ndarray:
    """(species x species) taper distances (A) from the AA RDFs. Z holds species 1..n per bead."""
    n_species = len(names)
    half_box = 0.5 * float(np.min([np.diag(c) for c in cells]))
    r_max = min(r_max_A, half_box)
    taper = np.zeros((n_species, n_species))
    for a in range(n_species):
        for b in range(a, n_species):
            r, g = rdf(R, cells, Z == a + 1, Z == b + 1, r_max, prior_cfg["rdf_bin_A"])
            try:
                taper[a, b] = taper[b, a] = first_contact(r, g, prior_cfg["rdf_threshold"])
            except ValueError:
                raise InputError(None, f"the AA RDF of {names[a]}-{names[b]} never exceeds {prior_cfg['rdf_threshold']} "
                                       f"below {r_max:.2f} A: no taper distance for the repulsive prior") from None
    return taper


def prior_from_dataset(data: dict, prior_cfg: dict, r_max_A: float) -> dict:
    """Taper distances from the AA RDFs (up to r_max_A or half the box); strength from the
    mapped forces. Teachers and students share it (``kdcg prior``)."""
    names = [str(s) for s in data["species_names"]]
    taper = taper_distances(data["R"], data["cell"], np.asarray(data["Z"][0]), names, prior_cfg, r_max_A)
    return {
        "dataset": dataset_fingerprint(data),
        "taper_A": taper.tolist(),
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

"""Agreement of predictions with their targets: MAE, RMSE, R^2 (units of the inputs)."""

from __future__ import annotations

import numpy as np


def regression(pred: np.ndarray, true: np.ndarray) -> dict:
    """MAE, RMSE and R^2 (1 - SS_res / SS_tot, around the mean of ``true``) over all elements."""
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    err = pred - true
    ss_tot = ((true - true.mean()) ** 2).sum()
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())),
            "r2": float(1.0 - (err ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")}


def per_species_centred(bead_energies: np.ndarray, species: np.ndarray) -> np.ndarray:
    """Bead energies (frames, beads) less the mean over all frames of each species' beads.

    A model trained on forces alone fixes energies only up to a constant per species, so two
    models' bead energies are compared after taking those constants out."""
    e = np.asarray(bead_energies, dtype=np.float64).copy()
    species = np.asarray(species)
    for s in np.unique(species):
        e[..., species == s] -= e[..., species == s].mean()
    return e


def offset_free_energy_agreement(pred_bead: np.ndarray, label_bead: np.ndarray, pred_energy: np.ndarray,
                                 label_energy: np.ndarray, species: np.ndarray) -> dict:
    """Per-bead energies with each species' mean removed and system energies with their mean
    removed (frames of one composition: per-species constants add one constant), then
    ``regression`` of each. Returns {"bead_energies": {...}, "energy": {...}, "n_frames": n}."""
    e = np.asarray(pred_energy, dtype=np.float64)
    t = np.asarray(label_energy, dtype=np.float64)
    return {"bead_energies": regression(per_species_centred(pred_bead, species), per_species_centred(label_bead, species)),
            "energy": regression(e - e.mean(), t - t.mean()), "n_frames": int(len(e))}

"""Teacher labels: a teacher's forces, per-bead energies and system energy on every frame, the
ensemble's mean of them, and the checks that labels belong to the dataset they supervise."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from kdcg.errors import InputError
from kdcg.files import read_npz
from kdcg.cg.mapping import load_dataset
from kdcg.models.model_io import load_model, predict_arrays
from kdcg.provenance import check_same_dataset, dataset_fingerprint

log = logging.getLogger(__name__)


def load_labels(path: Path, data: dict) -> dict:
    """Teacher (or ensemble) labels, checked against the dataset they must belong to (its
    content fingerprint: the same frames in the same order)."""
    path = Path(path)
    labels = read_npz(path, "labels")
    if not {"forces", "bead_energies", "energy", "fingerprint"} <= set(labels):
        raise InputError(path, "not a kdcg labels file (forces, bead_energies, energy, fingerprint)")
    try:
        have = json.loads(str(labels["fingerprint"]))
    except json.JSONDecodeError:
        raise InputError(path, "not a kdcg labels file: its fingerprint is not JSON") from None
    check_same_dataset(have, data, path, "labels")
    n_frames, n_beads = data["R"].shape[:2]
    expected = {"forces": (n_frames, n_beads, 3), "bead_energies": (n_frames, n_beads), "energy": (n_frames,)}
    for key, shape in expected.items():
        if labels[key].shape != shape:
            raise InputError(path, f"labels '{key}' have shape {labels[key].shape}, expected {shape}")
    for key in ("forces", "bead_energies", "energy"):
        if not np.isfinite(labels[key]).all():
            raise InputError(path, f"labels '{key}' contain NaN or infinite values")
    return labels


def save_labels(path: Path, data: dict, forces, bead_energies, energy, **extra) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, forces=np.asarray(forces, dtype=np.float32), bead_energies=np.asarray(bead_energies, dtype=np.float32),
             energy=np.asarray(energy, dtype=np.float64), fingerprint=json.dumps(dataset_fingerprint(data)),
             units=json.dumps({"forces": "kcal/mol/angstrom", "energy": "kcal/mol"}), **extra)
    os.replace(tmp, path)


def ensemble_labels(label_paths: list[Path], dataset_path: Path, out: Path) -> dict:
    """Mean of the teachers' labels; the per-frame spread of their forces is kept too."""
    data = load_dataset(dataset_path)
    members = [load_labels(p, data) for p in label_paths]
    if not members:
        raise InputError(None, "the ensemble needs at least one teacher's labels")
    forces = np.stack([m["forces"].astype(np.float64) for m in members])
    bead = np.stack([m["bead_energies"].astype(np.float64) for m in members])
    energy = np.stack([m["energy"].astype(np.float64) for m in members])
    save_labels(out, data, forces.mean(0), bead.mean(0), energy.mean(0),
                forces_std=forces.std(0).astype(np.float32), members=np.array([str(p) for p in label_paths]))
    summary = {"members": len(members), "mean_force_std_kcal_mol_A": float(forces.std(0).mean())}
    log.info("ensemble labels: %s", json.dumps(summary))
    return summary


def label_frames(model_path: Path, dataset_path: Path, out: Path, batch_size: int = 8, threads: int | None = None) -> dict:
    """A teacher's forces, per-bead energies and system energy on every frame of the dataset.

    On 2 CPU threads the forces differed between runs in their last bit (float32), which the
    students trained on them amplify; the workflow labels on one thread (deterministic)."""
    if threads:
        torch.set_num_threads(threads)
    data = load_dataset(dataset_path)
    graph, record = load_model(model_path, data)
    arrays = predict_arrays(graph, data["Z"], data["R"], data["cell"], batch_size)
    for k, v in arrays.items():
        if not np.isfinite(v).all():
            raise InputError(model_path, f"model predicts non-finite {k} on {dataset_path}")
    save_labels(out, data, **arrays)
    summary = {"frames": int(len(data["Z"])), "mean_abs_force_kcal_mol_A": float(np.abs(arrays["forces"]).mean()),
               "mean_energy_kcal_mol": float(arrays["energy"].mean())}
    log.info("labels %s: %s", out, json.dumps(summary))
    return summary

"""A model as a LAMMPS ML-IAP unified file (hippynn's MLIAPInterface), for a LAMMPS built with
ML-IAP and PYTHON, and the pair data such a LAMMPS hands it (to check the export without one)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def export_mliap(model_path: Path, out: Path) -> None:
    """Write the model as a LAMMPS ML-IAP unified file (hippynn's MLIAPInterface), for a
    LAMMPS with ML-IAP and PYTHON: ``pair_style mliap unified <out> 0``,
    ``pair_coeff * * <species names in type order>``. Energies kcal/mol, distances Angstrom
    (``units real``)."""
    import torch

    from . import hippynn_import  # noqa: F401  (before the first hippynn import)
    from hippynn.interfaces.lammps_interface import MLIAPInterface

    from kdcg.models.model import graph_node
    from kdcg.models.model_io import load_model

    graph, record = load_model(model_path)
    interface = MLIAPInterface(graph_node(graph, "bead_energies"), list(record["prior"]["species_names"]),
                               ndescriptors=1)
    tmp = Path(out).with_suffix(".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    torch.save(interface, tmp)
    os.replace(tmp, out)


class MLIAPPairData:
    """The fields LAMMPS's ML-IAP unified data object hands a model's compute_forces, filled
    from a full (both-direction) minimum-image pair list of one periodic frame without ghost
    atoms. Forces accumulate as LAMMPS does: f_i += fij, f_j -= fij."""

    def __init__(self, species, positions, cell, cutoff_A: float):
        pos = np.asarray(positions, dtype=np.float64)
        box = np.diag(np.asarray(cell, dtype=np.float64))
        d = pos[None, :, :] - pos[:, None, :]  # d[i, j] = x_j - x_i
        d -= box * np.round(d / box)
        r = np.linalg.norm(d, axis=-1)
        i, j = np.nonzero((r < cutoff_A) & ~np.eye(len(pos), dtype=bool))
        self.ntotal = self.nlistatoms = len(pos)
        self.elems = np.asarray(species, dtype=np.int32) - 1  # LAMMPS types 0-based here
        self.npairs = len(i)
        self.pair_i, self.pair_j = i.astype(np.int32), j.astype(np.int32)
        self.rij = d[i, j]
        self.f = np.zeros((self.ntotal, 3))
        self.eatoms = np.zeros(self.ntotal)
        self.energy = 0.0

    def update_pair_forces(self, fij):
        np.add.at(self.f, self.pair_i, fij)
        np.add.at(self.f, self.pair_j, -np.asarray(fij))


def mliap_forces(interface, species, positions, cell) -> tuple[float, np.ndarray]:
    """(energy kcal/mol, forces (beads, 3)) of an ML-IAP interface object on one frame."""
    data = MLIAPPairData(species, positions, cell, 2.0 * interface.rcutfac)
    interface.compute_forces(data)
    return data.energy, data.f

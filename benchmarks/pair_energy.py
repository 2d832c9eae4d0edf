"""Isolated-pair energy curves of trained CG models: two beads of given species alone in a large
box, energy (network + prior) against their distance, relative to the farthest distance
scanned. A two-body view of a many-body model: it shows a well that pulls a pair onto the
prior's steep wall, not how the model behaves in the liquid. Prints figures; asserts nothing.

    python benchmarks/pair_energy.py results-pilot-dataset-2/models/{teacher-5,ensemble}/model.pt \
        --pairs Cl-Cl Cho-Cho

Per model and pair: the lowest energy (kcal/mol) and where (A), and the energy at a few short
distances.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def pair_curve(model, species_ids: tuple[int, int], r_A: np.ndarray, box_A: float) -> np.ndarray:
    """Energies (kcal/mol) of the pair at each distance r_A, minus the last one's."""
    cell = np.eye(3) * box_A
    species = np.array(species_ids)
    frames = np.zeros((len(r_A), 2, 3))
    frames[:, :, :] = 0.25 * box_A
    frames[:, 1, 0] += r_A
    energies = np.array([e.energy_kcal_mol for e in model.evaluate_batch(species, frames, cell)])
    return energies - energies[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path, help="model.pt files (teachers, ensembles, students)")
    ap.add_argument("--pairs", nargs="+", default=None,
                    help="species pairs as A-B (default: every pair of the model's species)")
    ap.add_argument("--r-min", type=float, default=2.5, help="shortest distance (A)")
    ap.add_argument("--step", type=float, default=0.25, help="distance step (A)")
    args = ap.parse_args()

    import torch

    from kdcg.models.model_forces import ModelForces

    torch.set_num_threads(1)
    for path in args.models:
        model = ModelForces(path)
        names = list(model.species_names)
        cutoff = float(model.cutoff_A)
        # the reference stays within the cutoff: a frame without a pair is not what is scanned
        r_A = np.arange(args.r_min, cutoff - 0.2 + 1e-9, args.step)
        pairs = args.pairs or [f"{a}-{b}" for i, a in enumerate(names) for b in names[i:]]
        parts = []
        for pair in pairs:
            a, b = pair.split("-")
            if a not in names or b not in names:
                sys.exit(f"{path}: the model has species {names}, not {pair}")
            energy = pair_curve(model, (names.index(a) + 1, names.index(b) + 1), r_A, box_A=4 * cutoff)
            low = int(np.argmin(energy))
            short = ", ".join(f"E({r:.2f} A) {energy[np.searchsorted(r_A, r - 1e-9)]:.3g}"
                              for r in (3.0, 3.25) if r_A[0] <= r <= r_A[-1])
            parts.append(f"{pair}: lowest {energy[low]:.2f} kcal/mol at {r_A[low]:.2f} A; {short}")
        print(f"{path} (relative to {r_A[-1]:.2f} A):")
        for line in parts:
            print(f"  {line}")


if __name__ == "__main__":
    main()

"""Structural distribution functions of bead configurations (Angstrom).

``rdf``: radial distribution function of one species pair in an orthorhombic periodic box,
minimum image, normalised by the ideal-gas count of each spherical shell.
"""

from __future__ import annotations

import numpy as np


def minimum_image(d: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return d - edges * np.round(d / edges)


def rdf(R: np.ndarray, cells: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray, r_max_A: float,
        dr_A: float) -> tuple[np.ndarray, np.ndarray]:
    """g_ab(r) averaged over frames.

    R: (frames, beads, 3) A; cells: (frames, 3, 3) orthorhombic, A; masks select beads of
    species a and b. r_max must not exceed half the shortest box edge (minimum image).
    Returns bin centres (A) and g(r) on the uniform grid [0, r_max) of width dr.
    """
    R = np.asarray(R, dtype=np.float64)
    edges_all = np.stack([np.diag(c) for c in np.asarray(cells, dtype=np.float64)])
    if r_max_A > 0.5 * edges_all.min() + 1e-9:
        raise ValueError(f"r_max {r_max_A} A exceeds half the shortest box edge {0.5 * edges_all.min():.3f} A")
    bins = np.arange(0.0, r_max_A + 0.5 * dr_A, dr_A)
    bins = bins[bins <= r_max_A + 1e-9]
    counts = np.zeros(len(bins) - 1)
    ia, ib = np.flatnonzero(mask_a), np.flatnonzero(mask_b)
    same = np.array_equal(ia, ib)
    ideal = 0.0
    shell = 4.0 / 3.0 * np.pi * (bins[1:] ** 3 - bins[:-1] ** 3)
    for x, edges in zip(R, edges_all):
        d = minimum_image(x[ia][:, None, :] - x[ib][None, :, :], edges)
        r = np.sqrt((d * d).sum(-1))
        if same:
            r = r[np.triu_indices(len(ia), 1)]
            n_pairs = len(ia) * (len(ia) - 1) / 2.0
        else:
            r = r.ravel()
            n_pairs = float(len(ia) * len(ib))
        counts += np.histogram(r, bins=bins)[0]
        ideal += n_pairs / np.prod(edges) * shell
    return 0.5 * (bins[1:] + bins[:-1]), counts / ideal


def first_contact(r: np.ndarray, g: np.ndarray, threshold: float) -> float:
    """The first r at which g(r) exceeds the threshold (A)."""
    above = np.flatnonzero(g > threshold)
    if len(above) == 0:
        raise ValueError(f"g(r) never exceeds {threshold}")
    return float(r[above[0]])

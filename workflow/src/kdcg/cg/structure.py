"""Structural distribution functions of bead configurations (Angstrom).

``pair_histogram``: pair counts of one species pair per frame in an orthorhombic periodic box,
minimum image, with the ideal-gas count of each spherical shell (their ratio is the RDF).
"""

from __future__ import annotations

import numpy as np


def minimum_image(d: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return d - edges * np.round(d / edges)


def pair_histogram(R: np.ndarray, cells: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray, r_max_A: float,
                   dr_A: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair counts of each frame and their ideal-gas expectation, shell by shell.

    R: (frames, beads, 3) A; cells: (frames, 3, 3) orthorhombic, A; masks select beads of
    species a and b. r_max must not exceed half the shortest box edge (minimum image).
    Returns bin centres (A) on the uniform grid [0, r_max) of width dr, and (frames, bins)
    arrays of counted pairs and of the pairs an ideal gas of the same density would put there;
    g(r) of any set of frames is the ratio of their sums.
    """
    R = np.asarray(R, dtype=np.float64)
    edges_all = np.stack([np.diag(c) for c in np.asarray(cells, dtype=np.float64)])
    if r_max_A > 0.5 * edges_all.min() + 1e-9:
        raise ValueError(f"r_max {r_max_A} A exceeds half the shortest box edge {0.5 * edges_all.min():.3f} A")
    bins = np.arange(0.0, r_max_A + 0.5 * dr_A, dr_A)
    bins = bins[bins <= r_max_A + 1e-9]
    counts = np.zeros((len(R), len(bins) - 1))
    ideal = np.zeros((len(R), len(bins) - 1))
    ia, ib = np.flatnonzero(mask_a), np.flatnonzero(mask_b)
    same = np.array_equal(ia, ib)
    shell = 4.0 / 3.0 * np.pi * (bins[1:] ** 3 - bins[:-1] ** 3)
    for i, (x, edges) in enumerate(zip(R, edges_all)):
        d = minimum_image(x[ia][:, None, :] - x[ib][None, :, :], edges)
        r = np.sqrt((d * d).sum(-1))
        if same:
            r = r[np.triu_indices(len(ia), 1)]
            n_pairs = len(ia) * (len(ia) - 1) / 2.0
        else:
            r = r.ravel()
            n_pairs = float(len(ia) * len(ib))
        counts[i] = np.histogram(r, bins=bins)[0]
        ideal[i] = n_pairs / np.prod(edges) * shell
    return 0.5 * (bins[1:] + bins[:-1]), counts, ideal


# --------------------------------------------------------------------------- all distributions of a trajectory
#
# One pass over the frames computes the minimum-image distance matrix once per frame and takes
# every RDF, ADF and CDF from it (a 1,000-bead frame is a 1,000 x 1,000 matrix: cheap next to
# computing it once per distribution).


def uniform_grid(x_max: float, dx: float) -> np.ndarray:
    """Bin edges 0, dx, ..., n dx with n dx <= x_max."""
    n = int(np.floor(x_max / dx + 1e-9))
    if n < 1:
        raise ValueError(f"grid of width {dx} does not fit below {x_max}")
    return np.arange(n + 1) * dx


def frame_distances(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Minimum-image distance matrix r[i, j] (A) of one frame, r[i, i] = inf.

    One coordinate at a time and in place: a third of the memory traffic of forming the
    (n, n, 3) difference array, which matters at 1,000 beads x 100 frames."""
    x = np.asarray(x, dtype=np.float64)
    r2 = np.zeros((len(x), len(x)))
    for k in range(3):
        dk = x[None, :, k] - x[:, None, k]
        dk -= edges[k] * np.rint(dk / edges[k])
        dk *= dk
        r2 += dk
    r = np.sqrt(r2, out=r2)
    np.fill_diagonal(r, np.inf)
    return r


def min_image_vectors(x: np.ndarray, edges: np.ndarray, i, j) -> np.ndarray:
    """x_j - x_i under the minimum image convention, for index arrays of any shape."""
    d = x[j] - x[i]
    return d - edges * np.rint(d / edges)


def _nearest_within(r_rows: np.ndarray, cutoff: float) -> np.ndarray:
    """Column indices of each row's m nearest, m = the largest count within the cutoff."""
    m = max(1, int((r_rows < cutoff).sum(1).max()))
    if m >= r_rows.shape[1]:
        return np.broadcast_to(np.arange(r_rows.shape[1]), r_rows.shape)
    return np.argpartition(r_rows, m - 1, axis=1)[:, :m]


def angles_deg(x: np.ndarray, edges: np.ndarray, r: np.ndarray, centres, first, second, cutoffs_A,
               same: bool) -> list[np.ndarray]:
    """Angles (degrees) first-centre-second with both neighbours within each cutoff.

    centres/first/second: bead indices; same: first and second are one species (each
    unordered neighbour pair counted once)."""
    rc_max = max(cutoffs_A)
    r_a, r_c = r[np.ix_(centres, first)], r[np.ix_(centres, second)]
    sel_a, sel_c = _nearest_within(r_a, rc_max), _nearest_within(r_c, rc_max)
    rows = np.arange(len(centres))[:, None]
    ra, rc = r_a[rows, sel_a], r_c[rows, sel_c]
    va = min_image_vectors(x, edges, centres[:, None], np.asarray(first)[sel_a])
    vc = min_image_vectors(x, edges, centres[:, None], np.asarray(second)[sel_c])
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("imx,inx->imn", va, vc) / (ra[:, :, None] * rc[:, None, :])
    theta = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    ids_a, ids_c = np.asarray(first)[sel_a], np.asarray(second)[sel_c]
    # one angle per unordered pair of distinct neighbours
    distinct = ids_a[:, :, None] != ids_c[:, None, :]
    if same:
        distinct &= ids_a[:, :, None] < ids_c[:, None, :]
    out = []
    for cutoff in cutoffs_A:
        mask = distinct & (ra < cutoff)[:, :, None] & (rc < cutoff)[:, None, :]
        out.append(theta[mask])
    return out


def mst_edge_lengths(r_sub: np.ndarray, max_edge_A: float | None = None) -> np.ndarray:
    """Merge distances of single-linkage clustering = edge lengths of the minimum spanning
    tree of a (minimum-image) distance matrix (A).

    With ``max_edge_A`` only edges shorter than it are kept: the spanning forest of that
    graph has exactly the tree's edges below the cut (Kruskal adds edges in length order),
    at a fraction of the cost; the longer merges are left out."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    keep = np.isfinite(r_sub) if max_edge_A is None else (r_sub < max_edge_A)
    keep &= ~np.eye(len(r_sub), dtype=bool)
    i, j = np.nonzero(np.triu(keep, 1))
    # csgraph reads an explicit 0 as "no edge"; a zero distance between distinct beads stays
    weights = np.maximum(r_sub[i, j], 1e-12)
    graph = csr_matrix((weights, (i, j)), shape=r_sub.shape)
    return minimum_spanning_tree(graph).data


def tae(p: np.ndarray, q: np.ndarray, dx: float) -> float:
    """Total absolute error (Eq. 9 of the paper): sum_k |p_k - q_k| dx on one uniform grid."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"distributions on different grids: {p.shape} vs {q.shape}")
    return float(np.abs(p - q).sum() * dx)

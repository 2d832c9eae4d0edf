"""The repulsive prior's taper distances: exact on a lattice, robust to the number of frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdcg.prior import nearest_neighbour_distances, taper_distances
from kdcg.structure import rdf

# 41 mapped frames (1 ps apart) of the default run's 200-bead box, written by `make run`
# (commit c5d1e30): the smallest dataset a user of the default config trains on
DEFAULT_RUN = Path(__file__).parent / "data" / "default_run_bead_positions.npz"


def test_taper_on_a_lattice_is_the_nearest_neighbour_distance():
    spacing, shift = 4.0, 1.5
    grid = np.stack(np.meshgrid(*[np.arange(4) * spacing] * 3, indexing="ij"), -1).reshape(-1, 3)
    R = np.concatenate([grid, grid + [shift, 0.0, 0.0]])[None]
    Z = np.array([1] * 64 + [2] * 64)
    cells = np.diag([4 * spacing] * 3)[None]
    taper = taper_distances(R, cells, Z, 2, quantile=0.1)
    np.testing.assert_allclose(taper, [[spacing, shift], [shift, spacing]], atol=1e-12)
    # both directions count for a mixed pair: 64 + 64 distances
    assert len(nearest_neighbour_distances(R, cells, Z == 1, Z == 2)) == 128


def test_taper_moves_less_than_a_tenth_of_an_angstrom_between_10_and_100_percent_of_the_frames():
    d = np.load(DEFAULT_RUN)
    R, Z = d["R"].astype(float), d["Z"].astype(int)
    cells = np.repeat(d["cell"][None].astype(float), len(R), axis=0)
    full = taper_distances(R, cells, Z, 3, quantile=0.1)
    k = round(0.1 * len(R))
    worst_quantile, worst_first_contact = 0.0, 0.0
    first = {}
    for start in range(0, len(R) - k + 1, k):  # every contiguous tenth of the run
        part = slice(start, start + k)
        worst_quantile = max(worst_quantile, np.abs(taper_distances(R[part], cells[part], Z, 3, 0.1) - full).max())
        # the rule it replaced: the first r where the AA RDF exceeds 0.01
        for a in range(3):
            for b in range(a, 3):
                def first_contact(sel):
                    r, g = rdf(R[sel], cells[sel], Z == a + 1, Z == b + 1, 9.0, 0.05)
                    return r[np.flatnonzero(g > 0.01)[0]]
                first.setdefault((a, b), first_contact(slice(None)))
                worst_first_contact = max(worst_first_contact, abs(first_contact(part) - first[(a, b)]))
    assert worst_quantile < 0.1
    assert worst_first_contact > 0.15  # the old rule would have failed this test

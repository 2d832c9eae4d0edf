"""The repulsive prior's taper distances: the first r where each pair's AA RDF exceeds the threshold."""

from __future__ import annotations

import numpy as np
import pytest

from kdcg.errors import InputError
from kdcg.prior import taper_distances

CFG = {"rdf_threshold": 0.01, "rdf_bin_A": 0.05}


def test_taper_on_a_lattice_is_the_bin_of_the_nearest_neighbour_distance():
    spacing, shift = 4.0, 1.5
    grid = np.stack(np.meshgrid(*[np.arange(4) * spacing] * 3, indexing="ij"), -1).reshape(-1, 3)
    R = np.concatenate([grid, grid + [shift, 0.0, 0.0]])[None]
    Z = np.array([1] * 64 + [2] * 64)
    cells = np.diag([4 * spacing] * 3)[None]
    taper = taper_distances(R, cells, Z, ["A", "B"], CFG, r_max_A=8.0)
    # bin centres: the bin [4.00, 4.05) holds the like pairs, [1.50, 1.55) the unlike ones
    np.testing.assert_allclose(taper, [[4.025, 1.525], [1.525, 4.025]], atol=1e-9)


def test_a_pair_that_never_meets_is_named():
    R = np.array([[[1.0, 1.0, 1.0], [2.0, 1.0, 1.0], [9.0, 9.0, 9.0]]])
    with pytest.raises(InputError, match="A-B never exceeds 0.01 below 3.00 A"):
        taper_distances(R, np.diag([20.0] * 3)[None], np.array([1, 1, 2]), ["A", "B"], CFG, r_max_A=3.0)

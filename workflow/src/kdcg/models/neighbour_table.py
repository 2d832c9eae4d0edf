"""A pair list of fixed shape for the compiled engine (kdcg.models.compiled_forces): every bead's
neighbours within cutoff + skin in one row of a (frames, beads, capacity) table.

A compiler specialises a graph to its tensors' shapes; hippynn's pair list changes length at
every rebuild, so a compiled graph would be rebuilt with it. Here the list has ``capacity``
slots per bead. Unused slots point at the bead itself, shifted by ``pad_shift_A`` along x, so
their pair vector is that shift: a distance beyond every cutoff, at which the sensitivities'
cutoff and the prior's mask give exactly zero energy and zero gradient (a ghost neighbour, as
torchmd-net pads its list). When a rebuild finds a bead with more neighbours than the capacity,
the capacity grows and the caller is told so (the compiled graph is rebuilt for the new shape,
once); a pair is never dropped.

Pairs are reused, as kdcg.models.pairs.VerletPairs does, while every bead of every frame stays
within skin/2 (A) of where it was at the last build.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from kdcg.models.pairs import orthorhombic_kdtree_pairs

log = logging.getLogger(__name__)

CAPACITY_SLACK = 1.2  # slots per bead: the fullest bead's count at a build times this ...
CAPACITY_MULTIPLE = 8  # ... rounded up to a multiple of this (vector-friendly rows)


def capacity_for(most_neighbours: int) -> int:
    """Slots per bead for a list whose fullest bead has ``most_neighbours``: room for the
    density fluctuations of a liquid between builds without growing again."""
    wanted = max(1, math.ceil(CAPACITY_SLACK * most_neighbours))
    return CAPACITY_MULTIPLE * math.ceil(wanted / CAPACITY_MULTIPLE)


def neighbour_rows(positions_A: np.ndarray, cell_A: np.ndarray, reach_A: float, capacity: int | None):
    """The table of a batch of frames of one system.

    positions_A (frames, beads, 3), cell_A (3, 3) orthorhombic, ``reach_A`` = cutoff + skin.
    Returns (neighbour (frames, beads, capacity) int64: index frame * beads + j of each
    neighbour j, offset_A (frames, beads, capacity, 3) float32: the image shift added to
    R_i - R_j, most_neighbours: the fullest bead's count). ``capacity`` None or below the
    fullest bead's count: ``capacity_for`` that count."""
    positions = torch.as_tensor(np.asarray(positions_A, dtype=np.float64))
    cell = torch.as_tensor(np.asarray(cell_A, dtype=np.float64))
    n_frames, n_beads, _ = positions.shape
    found = [orthorhombic_kdtree_pairs(reach_A, positions[f], cell) for f in range(n_frames)]
    counts = [np.bincount(first.numpy(), minlength=n_beads) for first, _, _ in found]
    most = int(max(int(c.max()) for c in counts)) if n_beads else 0
    if capacity is None or capacity < most:
        capacity = capacity_for(most)
    pad = pad_shift_A(reach_A)
    neighbour = np.repeat(np.arange(n_frames * n_beads, dtype=np.int64).reshape(n_frames, n_beads, 1), capacity, axis=2)
    offset = np.zeros((n_frames, n_beads, capacity, 3), dtype=np.float32)
    offset[..., 0] = pad
    edges = np.diag(np.asarray(cell_A, dtype=np.float64))
    for f, ((first, second, image), count) in enumerate(zip(found, counts)):
        first, second, image = first.numpy(), second.numpy(), image.numpy()
        order = np.argsort(first, kind="stable")
        first, second, image = first[order], second[order], image[order]
        slot = np.arange(len(first)) - (np.cumsum(count) - count)[first]
        neighbour[f, first, slot] = f * n_beads + second
        offset[f, first, slot] = (image * edges).astype(np.float32)
    return torch.from_numpy(neighbour), torch.from_numpy(offset), most


def pad_shift_A(reach_A: float) -> float:
    """The ghost neighbour's distance (A): twice the reach, beyond every cutoff."""
    return 2.0 * reach_A


class NeighbourTable:
    """The table of one run: rebuilt when a bead has moved more than skin/2 since the last
    build (or ``forget`` was called), its capacity grown, never shrunk, when a build needs it."""

    def __init__(self, cutoff_A: float, skin_A: float):
        self.cutoff_A, self.skin_A = float(cutoff_A), float(skin_A)
        self.capacity: int | None = None
        self.neighbour = self.offset_A = None
        self._built_at: np.ndarray | None = None
        self._cell: np.ndarray | None = None
        self.builds = self.reuses = self.growths = 0

    def forget(self) -> None:
        self._built_at = None

    def update(self, positions_A: np.ndarray, cell_A: np.ndarray) -> bool:
        """Rebuild if needed; True when the capacity changed (the shapes a compiled graph saw)."""
        positions_A = np.asarray(positions_A, dtype=np.float64)
        cell_A = np.asarray(cell_A, dtype=np.float64)
        if not self._needs_build(positions_A, cell_A):
            self.reuses += 1
            return False
        before = self.capacity
        self.neighbour, self.offset_A, most = neighbour_rows(positions_A, cell_A, self.cutoff_A + self.skin_A,
                                                             self.capacity)
        self.capacity = self.neighbour.shape[2]
        self._built_at, self._cell = positions_A.copy(), cell_A.copy()
        self.builds += 1
        if before is not None and self.capacity != before:
            self.growths += 1
            log.warning("pair capacity grown from %d to %d slots per bead (a bead has %d neighbours within %.2f A): "
                        "the compiled graph is rebuilt for the new shape", before, self.capacity, most,
                        self.cutoff_A + self.skin_A)
        return before is not None and self.capacity != before

    def _needs_build(self, positions_A: np.ndarray, cell_A: np.ndarray) -> bool:
        if self._built_at is None or self.skin_A == 0 or self._built_at.shape != positions_A.shape:
            return True
        if not np.array_equal(self._cell, cell_A):
            return True
        moved_sq = ((positions_A - self._built_at) ** 2).sum(axis=-1)
        return bool(moved_sq.max() > (0.5 * self.skin_A) ** 2)

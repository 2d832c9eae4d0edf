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


def neighbour_rows(positions_A: np.ndarray, cell_A: np.ndarray, reach_A: float, capacities: tuple | None,
                   species: np.ndarray | None = None, n_species: int | None = None):
    """The table of a batch of frames of one system.

    positions_A (frames, beads, 3), cell_A (3, 3) orthorhombic, ``reach_A`` = cutoff + skin.
    With ``species`` (beads,) 1..S, each row holds its neighbours grouped by their species, in
    blocks of fixed size (species 1 first), so that a sum over one species' neighbours is a sum
    over one block; without, one block. ``capacities``: the blocks' sizes; None: each
    ``capacity_for`` its fullest bead's count; a block that cannot hold some bead's neighbours
    grows to that, the others stay as given.

    Returns (neighbour (frames, beads, slots) int64: index frame * beads + j of each neighbour
    j, offset_A (frames, beads, slots, 3) float32: the image shift added to R_i - R_j, mirror
    (frames, beads, slots) int64: the flat slot of the same pair listed from its other bead
    (ghost slots: frames * beads * slots, one past the end), capacities: the blocks' sizes,
    most: per block the fullest bead's count)."""
    positions = torch.as_tensor(np.asarray(positions_A, dtype=np.float64))
    cell = torch.as_tensor(np.asarray(cell_A, dtype=np.float64))
    n_frames, n_beads, _ = positions.shape
    n_groups = 1 if species is None else int(n_species or np.max(species))
    group_of = np.zeros(n_beads, dtype=np.int64) if species is None else np.asarray(species, dtype=np.int64) - 1
    found = [orthorhombic_kdtree_pairs(reach_A, positions[f], cell) for f in range(n_frames)]
    counts = [np.bincount(first.numpy() * n_groups + group_of[second.numpy()], minlength=n_beads * n_groups)
              .reshape(n_beads, n_groups) for first, second, _ in found]
    most = tuple(int(max(int(c[:, g].max()) for c in counts)) if n_beads else 0 for g in range(n_groups))
    if capacities is None or len(capacities) != n_groups:
        capacities = tuple(capacity_for(m) for m in most)
    elif any(c < m for c, m in zip(capacities, most)):
        # only the blocks that overflow grow; the others keep their size, so that a run's
        # shapes (each a compiled graph) only ever grow and settle after a few growths
        capacities = tuple(c if c >= m else capacity_for(m) for c, m in zip(capacities, most))
    starts = np.concatenate([[0], np.cumsum(capacities)[:-1]]).astype(np.int64)
    slots = int(sum(capacities))
    pad = pad_shift_A(reach_A)
    neighbour = np.repeat(np.arange(n_frames * n_beads, dtype=np.int64).reshape(n_frames, n_beads, 1), slots, axis=2)
    offset = np.zeros((n_frames, n_beads, slots, 3), dtype=np.float32)
    offset[..., 0] = pad
    mirror = np.full((n_frames, n_beads, slots), n_frames * n_beads * slots, dtype=np.int64)
    edges = np.diag(np.asarray(cell_A, dtype=np.float64))
    for f, ((first, second, image), count) in enumerate(zip(found, counts)):
        first, second, image = first.numpy(), second.numpy(), image.numpy()
        # the search lists pair p in both directions: p and p + half are each other's reverse
        half = len(first) // 2
        reverse = np.concatenate([np.arange(half, 2 * half), np.arange(half)])
        key = first * n_groups + group_of[second]
        order = np.argsort(key, kind="stable")
        flat_count = count.reshape(-1)
        rank = np.empty(len(first), dtype=np.int64)
        rank[order] = np.arange(len(first)) - (np.cumsum(flat_count) - flat_count)[key[order]]
        slot = starts[group_of[second]] + rank
        neighbour[f, first, slot] = f * n_beads + second
        offset[f, first, slot] = (image * edges).astype(np.float32)
        flat_slot = (f * n_beads + first) * slots + slot
        mirror[f, first, slot] = flat_slot[reverse]
    return torch.from_numpy(neighbour), torch.from_numpy(offset), torch.from_numpy(mirror), capacities, most


def pad_shift_A(reach_A: float) -> float:
    """The ghost neighbour's distance (A): twice the reach, beyond every cutoff."""
    return 2.0 * reach_A


class NeighbourTable:
    """The table of one run: rebuilt when a bead has moved more than skin/2 since the last
    build (or ``forget`` was called), its capacity grown, never shrunk, when a build needs it."""

    def __init__(self, cutoff_A: float, skin_A: float, species: np.ndarray | None = None,
                 n_species: int | None = None):
        self.cutoff_A, self.skin_A = float(cutoff_A), float(skin_A)
        self.species = None if species is None else np.asarray(species, dtype=np.int64)
        self.n_species = n_species
        self.capacities: tuple | None = None
        self.neighbour = self.offset_A = self.mirror = None
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
        before = self.capacities
        self.neighbour, self.offset_A, self.mirror, self.capacities, most = neighbour_rows(
            positions_A, cell_A, self.cutoff_A + self.skin_A, self.capacities, self.species, self.n_species)
        self._built_at, self._cell = positions_A.copy(), cell_A.copy()
        self.builds += 1
        grown = before is not None and self.capacities != before
        if grown:
            self.growths += 1
            log.warning("pair capacity grown from %s to %s slots per bead (the fullest beads have %s neighbours "
                        "within %.2f A): the compiled graph is rebuilt for the new shape", list(before),
                        list(self.capacities), list(most), self.cutoff_A + self.skin_A)
        return grown

    @property
    def capacity(self) -> int | None:
        """Slots per bead, all blocks."""
        return None if self.capacities is None else int(sum(self.capacities))

    def _needs_build(self, positions_A: np.ndarray, cell_A: np.ndarray) -> bool:
        if self._built_at is None or self.skin_A == 0 or self._built_at.shape != positions_A.shape:
            return True
        if not np.array_equal(self._cell, cell_A):
            return True
        moved_sq = ((positions_A - self._built_at) ** 2).sum(axis=-1)
        return bool(moved_sq.max() > (0.5 * self.skin_A) ** 2)

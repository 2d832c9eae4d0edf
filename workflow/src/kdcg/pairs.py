"""Pair lists for CG MD: a Verlet list that is rebuilt only when some bead has moved more
than half the skin since the last build.

hippynn's pair memory (``KDTreePairsMemory``) reuses pairs between calls, but its rebuild test
sums the squared displacements over all beads before taking the maximum over x, y, z; with
hundreds of beads that sum passes (skin/2)^2 after a few steps, so it rebuilds almost every
step while also paying for the skin's extra pairs. ``VerletPairs`` keeps hippynn's pair search
and distance filter (only pairs within the model's cutoff reach the network) and tests each
bead's own displacement, as a Verlet list does.
"""

from __future__ import annotations

import torch
from hippynn.layers.pairs.dispatch import KDTreePairsMemory


class VerletPairs(KDTreePairsMemory):
    """KD-tree pairs within cutoff + skin, reused while every bead stays within skin/2 (A) of
    where it was at the last build, in the same cell. Whoever changes which frames a batch
    holds calls ``forget`` (a batch of the same shape could hold other frames)."""

    def forget(self) -> None:
        self.positions = None

    def recalculation_needed(self, coordinates: torch.Tensor, cells: torch.Tensor) -> bool:
        """Also for a batch of frames (the replicas of one model, kdcg.replica_batch): the list
        is kept while the batch has the same frames in the same order and cells."""
        if self.skin == 0 or self.positions is None:
            return True
        if self.positions.shape != coordinates.shape or self.cells.shape != cells.shape or (self.cells != cells).any():
            return True
        moved_sq = ((coordinates.detach() - self.positions.detach()) ** 2).sum(dim=-1)  # per bead
        return bool(moved_sq.max() > (0.5 * self.skin) ** 2)


def use_verlet_pairs(graph: torch.nn.Module, skin_A: float) -> int:
    """Turn every hippynn pair memory of a (loaded) graph into a ``VerletPairs`` with this skin
    (A). Returns how many pair finders were changed; a graph shares one between its members."""
    n = 0
    for module in graph.modules():
        if isinstance(module, KDTreePairsMemory):
            if not isinstance(module, VerletPairs):
                module.__class__ = VerletPairs  # same state; only the rebuild test differs
            module.set_skin(float(skin_A))
            n += 1
    return n

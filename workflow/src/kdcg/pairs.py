"""Pair lists: for CG MD a Verlet list that is rebuilt only when some bead has moved more
than half the skin since the last build; for training, the pairs of every frame found once.

hippynn's pair memory (``KDTreePairsMemory``) reuses pairs between calls, but its rebuild test
sums the squared displacements over all beads before taking the maximum over x, y, z; with
hundreds of beads that sum passes (skin/2)^2 after a few steps, so it rebuilds almost every
step while also paying for the skin's extra pairs. ``VerletPairs`` keeps hippynn's pair search
and distance filter (only pairs within the model's cutoff reach the network) and tests each
bead's own displacement, as a Verlet list does.
"""

from __future__ import annotations

import math

import torch

from . import hippynn_import  # noqa: F401  (before the first hippynn import)
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


def forget_pairs(graph: torch.nn.Module) -> None:
    """Make every Verlet pair list of a graph rebuild at its next evaluation."""
    for module in graph.modules():
        if isinstance(module, VerletPairs):
            module.forget()


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


def cache_training_pairs(model, database, device: torch.device, cutoff_A: float) -> None:
    """Find the pairs of every frame of every split once (hippynn's ``precompute_pairs``) and
    let the training graph read them from the database, instead of a KD-tree search per batch
    per epoch: the training frames never change. Only the search is skipped; distances (and
    their gradients) are computed from the positions as before. Reassemble the training modules
    afterwards, and save a graph with its own pair search (kdcg.model_io.inference_graph)."""
    import numpy as np
    from hippynn.experiment import assembly
    from hippynn.graphs.nodes.pairs import KDTreePairsMemory as KDTreePairsMemoryNode

    # hippynn caches the output of a periodic pair finder; its KD-tree finder gives the same
    # outputs but is not on hippynn's list
    assembly._PAIRCACHE_COMPATIBLE_COMPUTERS.add(KDTreePairsMemoryNode)
    cells = np.concatenate([np.asarray(split["cells"]) for split in database.splits.values()])
    shortest_edge = float(np.min(np.linalg.norm(cells, axis=-1)))
    n_images = max(1, math.ceil(cutoff_A / shortest_edge))  # periodic images the cutoff can reach
    assembly.precompute_pairs(model, database, batch_size=8, device=device, n_images=n_images)

"""Pair lists: for CG MD a Verlet list that is rebuilt only when some bead has moved more
than half the skin since the last build; for training, the pairs of every frame found once.

hippynn's pair memory (``KDTreePairsMemory``) reuses pairs between calls, but its rebuild test
sums the squared displacements over all beads before taking the maximum over x, y, z; with
hundreds of beads that sum passes (skin/2)^2 after a few steps, so it rebuilds almost every
step while also paying for the skin's extra pairs. ``VerletPairs`` keeps hippynn's pair search
and distance filter (only pairs within the model's cutoff reach the network) and tests each
bead's own displacement, as a Verlet list does. Its pair search (``OrthorhombicKDTreePairs``)
and its filter to the cutoff return hippynn's pairs in hippynn's order, faster (see there), so
the forces are the same to the last bit.
"""

from __future__ import annotations

import math

import torch

from . import hippynn_import  # noqa: F401  (before the first hippynn import)
from hippynn.layers.pairs.dispatch import KDTreePairsMemory, _DispatchNeighbors
from hippynn.layers.pairs.indexing import PairUncacher


def orthorhombic_kdtree_pairs(cutoff_A: float, coords: torch.Tensor, cell: torch.Tensor):
    """The pairs of one periodic frame within ``cutoff_A`` (below half the shortest edge of an
    orthorhombic cell): (first, second, image), each pair in both directions, exactly as
    hippynn's ``neighbor_list_kdtree`` returns them, in its order. hippynn picks each pair's
    periodic image by comparing the 27 neighbouring images in torch; with the cutoff below half
    the box the nearest image is per axis the rounded ratio of the separation to the edge, one
    vectorised numpy expression. The KD-tree (scipy's ``KDTree``, whose leaf size decides the
    order; ``cKDTree``'s default differs) gets the same input
    as hippynn's, so the pairs come in the same order and the forces are the same bits."""
    import numpy as np
    from scipy.spatial import KDTree

    edges = torch.diag(cell)
    if torch.count_nonzero(cell - torch.diag(edges)) or (cutoff_A >= edges / 2).any():
        raise ValueError(f"the pair search needs an orthorhombic cell with edges above twice the cutoff "
                         f"({cutoff_A} A); got {cell.tolist()}")
    wrapped = coords % edges
    wrapped = torch.where(wrapped == edges, 0, wrapped)  # % may return the edge itself
    edges_np = edges.detach().cpu().numpy()
    pairs = KDTree(wrapped.detach().cpu().numpy(), boxsize=edges_np).query_pairs(r=cutoff_A, output_type="ndarray")
    first, second = pairs[:, 0], pairs[:, 1]
    raw = coords.detach().cpu().numpy().astype(np.float64)
    separation = raw[first] - raw[second]
    image = -np.rint(separation / edges_np.astype(np.float64)).astype(np.int64)
    dev = coords.device
    return (torch.from_numpy(np.concatenate([first, second])).to(dev),
            torch.from_numpy(np.concatenate([second, first])).to(dev),
            torch.from_numpy(np.concatenate([image, -image])).to(dev))


class OrthorhombicKDTreePairs(_DispatchNeighbors):
    """hippynn's frame-by-frame pair search with ``orthorhombic_kdtree_pairs`` for each frame."""

    def compute_one(self, positions, cell):
        with torch.no_grad():
            return orthorhombic_kdtree_pairs(self.dist_hard_max, positions, cell)


class VerletPairs(KDTreePairsMemory):
    """KD-tree pairs within cutoff + skin, reused while every bead stays within skin/2 (A) of
    where it was at the last build, in the same cell. Whoever changes which frames a batch
    holds calls ``forget`` (a batch of the same shape could hold other frames)."""

    _pair_indexer_class = OrthorhombicKDTreePairs

    def forget(self) -> None:
        self.positions = None

    def forward(self, coordinates, nonblank, real_atoms, inv_real_atoms, cells, mol_index, n_molecules, n_atoms_max):
        """hippynn's KDTreePairsMemory.forward, with the pairs beyond the cutoff dropped by one
        index list for all six outputs (hippynn masks each output separately, a search each)."""
        if self.recalculation_needed(coordinates, cells):
            self.recalculations += 1
            _, first, second, _, offsets, offset_index = self._pair_indexer(
                coordinates, nonblank, real_atoms, inv_real_atoms, cells, mol_index, n_molecules, n_atoms_max)
            with torch.no_grad():
                pair_cells = cells[mol_index[first]]
                pair_offsets = torch.bmm(offsets.unsqueeze(1).to(pair_cells.dtype), pair_cells).squeeze(1)
            self.pair_first, self.pair_second, self.offsets, self.offset_index = first, second, offsets, offset_index
            self.pair_offsets, self.positions, self.cells = pair_offsets, coordinates, cells
        else:
            self.reuses += 1
        flat = coordinates.reshape(n_molecules * n_atoms_max, 3)[real_atoms]
        # index_select: advanced indexing gathers a few times slower on a CPU
        pair_coord = flat.index_select(0, self.pair_first) - flat.index_select(0, self.pair_second) + self.pair_offsets
        dist = pair_coord.norm(dim=1)
        keep = torch.nonzero(dist < self.hard_dist_cutoff).squeeze(1)
        return tuple(x.index_select(0, keep) for x in (dist, self.pair_first, self.pair_second, pair_coord,
                                                        self.offsets, self.offset_index))

    def recalculation_needed(self, coordinates: torch.Tensor, cells: torch.Tensor) -> bool:
        """Also for a batch of frames (the replicas of one model, kdcg.md.replica_batch): the list
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


def cache_training_pairs(model, database, device: torch.device, cutoff_A: float, padded: bool = True) -> None:
    """Find the pairs of every frame of every split once (hippynn's ``precompute_pairs``) and
    let the training graph read them from the database, instead of a KD-tree search per batch
    per epoch: the training frames never change. Only the search is skipped; distances (and
    their gradients) are computed from the positions as before. The cache is kept as one padded
    row table per frame (``padded_pair_table``), not hippynn's sparse tensor, whose rows the
    data loader would look up frame by frame at a cost that grows with the whole split.
    Reassemble the training modules afterwards, and save a graph with its own pair search
    (kdcg.models.model_io.inference_graph). ``padded=False`` keeps hippynn's sparse cache
    (benchmarks/training_pairs.py times both)."""
    import numpy as np
    from hippynn.experiment import assembly
    from hippynn.graphs.nodes.pairs import KDTreePairsMemory as KDTreePairsMemoryNode
    from hippynn.graphs.nodes.base.node_functions import find_relatives
    from hippynn.graphs.nodes.pairs import PairUncacher as PairUncacherNode

    # hippynn caches the output of a periodic pair finder; its KD-tree finder gives the same
    # outputs but is not on hippynn's list
    assembly._PAIRCACHE_COMPATIBLE_COMPUTERS.add(KDTreePairsMemoryNode)
    cells = np.concatenate([np.asarray(split["cells"]) for split in database.splits.values()])
    shortest_edge = float(np.min(np.linalg.norm(cells, axis=-1)))
    n_images = max(1, math.ceil(cutoff_A / shortest_edge))  # periodic images the cutoff can reach
    assembly.precompute_pairs(model, database, batch_size=8, device=device, n_images=n_images)
    if not padded:
        return
    for split in database.splits.values():
        split[assembly._PAIRCACHE_DB_NAME] = padded_pair_table(split[assembly._PAIRCACHE_DB_NAME])
    for node in find_relatives(model.nodes_to_compute, PairUncacherNode):
        node.torch_module.__class__ = PaddedPairUncacher  # same state; reads the padded table


PAD = -1  # first column of an unused row of a padded pair table


def padded_pair_table(cache: torch.Tensor) -> torch.Tensor:
    """hippynn's pair cache (sparse, frames x beads x beads x images x 3 offsets) as an int32
    table (frames, most pairs of any frame, 6): per pair (first, second, image index, offset x,
    y, z), a frame's pairs in the order of hippynn's coalesced cache, unused rows PAD. A data
    loader picks a frame's rows by plain indexing. Kept on the CPU, as the database is (a cache
    found on a GPU comes back from it)."""
    cache = cache.coalesce().cpu()
    frame, first, second, image = cache.indices()
    n_frames = cache.shape[0]
    counts = torch.bincount(frame, minlength=n_frames)
    starts = torch.cumsum(counts, 0) - counts
    row = torch.arange(len(frame)) - starts[frame]
    table = torch.full((n_frames, int(counts.max()) if len(frame) else 0, 6), PAD, dtype=torch.int32)
    table[frame, row] = torch.cat([torch.stack([first, second, image], 1), cache.values().to(torch.int64)], 1).to(torch.int32)
    return table


class PaddedPairUncacher(PairUncacher):
    """hippynn's ``PairUncacher`` reading a batch of padded pair tables (``padded_pair_table``):
    the same pairs in the same order, so the same outputs to the last bit."""

    def forward(self, table, coordinates, cell, real_atoms, inv_real_atoms, n_atoms_max, n_molecules):
        if table.is_sparse:
            return super().forward(table, coordinates, cell, real_atoms, inv_real_atoms, n_atoms_max, n_molecules)
        # a frame's used rows come first in its table: slices, not a boolean mask; and
        # index_select, not advanced indexing (either is a few times slower on a CPU)
        counts = (table[..., 0] != PAD).sum(1).tolist()
        rows = torch.cat([table[f, :n] for f, n in enumerate(counts)]).to(torch.int64)
        frame = torch.repeat_interleave(torch.arange(table.shape[0], device=table.device),
                                        torch.tensor(counts, device=table.device))
        first_in_frame, second_in_frame, image = rows[:, 0], rows[:, 1], rows[:, 2]
        cell_offsets = rows[:, 3:6].to(torch.int32)
        pair_first = inv_real_atoms.index_select(0, first_in_frame + frame * n_atoms_max)
        pair_second = inv_real_atoms.index_select(0, second_in_frame + frame * n_atoms_max)
        atom_coordinates = coordinates.reshape(n_molecules * n_atoms_max, 3)[real_atoms]
        offsets = torch.cat([frame_offsets.to(cell.dtype) @ cell[f]
                             for f, frame_offsets in enumerate(torch.split(cell_offsets, counts))])
        pair_coord = (atom_coordinates.index_select(0, pair_first) - atom_coordinates.index_select(0, pair_second)
                      + offsets)
        return pair_coord.norm(dim=1), pair_first, pair_second, pair_coord, cell_offsets, image

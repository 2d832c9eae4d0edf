"""Training through kdcg's written-out forces (``training.engine: kernels``).

hippynn trains a force loss by differentiating its autograd forces a second time: every pair
operation runs forward, backward for the forces, and twice more for the loss's gradient. Here a
batch's forces come from the written-out derivative of kdcg.models.dense_network and the loss's
gradient from one backward pass through it: for the scalar network (the study's ``Hipnn``)
``ScalarKernelForces``, its pair stage in numba kernels with their adjoints
(kdcg.models.scalar_pair_kernels), the per-bead layers in PyTorch; for HIP-NN-TS (``HipnnVec``,
``HipnnQuad``) ``AnalyticForces``, in PyTorch operations that autograd differentiates once. The
weights are the hippynn model's own parameters: the stacked copy the forces read is tied to them
before each batch (kdcg.models.stacked_members.StackedMembers.tie), so hippynn's optimiser,
checkpoints, early stopping and saved model are untouched.

``kernel_engine`` turns hippynn's training graph into a ``KernelTrainingGraph`` for the epochs
(a class swap: the same module, parameters and state) and back afterwards, so that hippynn's
structure file and checkpoints hold its own graph and a resumed job swaps again. The outputs,
the loss and its gradient equal hippynn's to float32 rounding (tests/unit/test_training.py).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from kdcg.models import hippynn_import  # noqa: F401  (before the first hippynn import)
from hippynn.graphs import GraphModule, IdxType

from kdcg.errors import InputError
from kdcg.models.model import DB_CELLS, DB_POSITIONS, DB_SPECIES

log = logging.getLogger(__name__)

ENGINES = ("auto", "hippynn", "kernels")
#: the tensor orders that ``auto`` trains through the kernels on a CPU: measured faster than
#: hippynn's graph for Hipnn (1.86 x per epoch) and HipnnQuad (1.57-1.85 x at 16/10/8 A, 2.62 x at
#: Table 1's size); HipnnVec measured level (1.04 x per epoch), so it stays with hippynn's
#: (docs/performance.md)
AUTO_KERNEL_ORDERS = (0, 2)
#: the neighbour tables of the training frames are kept between epochs up to this many bytes
#: (the study's 501 frames x 200 beads need about 60 MB); past it, tables are built per batch
TABLE_CACHE_BYTES = 2 ** 30


def _one_network(graph: GraphModule):
    """The graph's network as a stack of one (kdcg.models.compiled_forces.stacked_parts), or
    None for an ensemble or a graph kdcg did not build."""
    from kdcg.models.compiled_forces import stacked_parts

    try:
        stacked, _ = stacked_parts(graph)
    except TypeError:
        return None
    return stacked if stacked.n_members == 1 else None


def kernels_apply(graph: GraphModule) -> bool:
    """Whether the written-out forces can train this graph's network: one HIP-NN or HIP-NN-TS
    with one interaction layer and softplus activations
    (kdcg.models.dense_network.analytic_forces_apply)."""
    from kdcg.models.dense_network import analytic_forces_apply

    stacked = _one_network(graph)
    return stacked is not None and analytic_forces_apply(stacked)


def training_engine(engine: str, graph: GraphModule, device: torch.device) -> str:
    """``training.engine`` resolved for this graph and device: hippynn or kernels. auto takes
    the kernels on a CPU where they apply and were measured faster (``AUTO_KERNEL_ORDERS``)."""
    from kdcg.models.dense_network import analytic_forces_apply

    if engine not in ENGINES:
        raise InputError(None, f"training.engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    stacked = _one_network(graph) if device.type == "cpu" else None
    applies = stacked is not None and analytic_forces_apply(stacked)
    if engine == "auto":
        return "kernels" if applies and stacked.blocks[0][0].base.order in AUTO_KERNEL_ORDERS else "hippynn"
    if engine == "kernels" and not applies:
        raise InputError(None, "training.engine: kernels trains one network with one interaction layer "
                               "(model.n_interaction_layers: 1) on a CPU only; use auto or hippynn for this model")
    return engine


@dataclass
class _KernelState:
    """What the kernel path keeps beside the graph (a plain object: no submodule of the graph,
    nothing in its state_dict)."""

    stacked: object
    repulsion: object
    network: object  # hippynn's Hipnn module, whose parameters are trained
    head: object  # its HEnergy module
    cutoff_A: float
    n_species: int
    inputs: list
    outputs: list  # (name, index state) of each output the loss and the metrics read
    run: object = None
    species_key: bytes | None = None
    capacities: tuple | None = None
    tables: dict = field(default_factory=dict)
    table_bytes: int = 0


class KernelTrainingGraph(GraphModule):
    """hippynn's training graph with the outputs a kdcg loss reads (forces, forces_vs_teacher,
    bead_energies, energy) computed through the written-out forces; made by ``kernel_engine``."""

    _kdcg: _KernelState

    def forward(self, *input_values):
        from kdcg.models.dense_network import AnalyticForces, DenseNetwork, ScalarKernelForces, scalar_kernels_apply

        state = self._kdcg
        values = dict(zip(state.inputs, input_values))
        positions, cells, species = values[DB_POSITIONS], values[DB_CELLS], values[DB_SPECIES]
        n_frames, n_beads = positions.shape[:2]
        first = species[0].cpu().numpy().astype(np.int64)
        if not bool((species == species[0]).all()):
            raise InputError(None, "training.engine kernels: every frame of a batch must hold the same beads")
        if state.species_key != first.tobytes():
            state.species_key = first.tobytes()
            network = DenseNetwork(state.stacked, state.repulsion, first, state.cutoff_A)
            # the scalar network's pair stage in numba; a HIP-NN-TS's written out in PyTorch
            state.run = (ScalarKernelForces(network, compile=False) if scalar_kernels_apply(state.stacked)
                         else AnalyticForces(network))
            state.tables.clear()
            state.table_bytes = 0
        state.stacked.tie([state.network], [state.head])
        neighbour, offset, mirror = self._batch_table(positions.detach().cpu().numpy(), cells.detach().cpu().numpy(),
                                                      first)
        member_energy, prior_energy, bead, forces = state.run(positions.detach().cpu(), neighbour, offset, mirror,
                                                              state.capacities)
        energy = (member_energy[0] + prior_energy).reshape(n_frames, 1)
        molatom = {"forces": forces[0], "forces_vs_teacher": forces[0], "bead_energies": bead.unsqueeze(-1)}
        out = []
        for name, index_state in state.outputs:
            if name == "energy":
                out.append(energy)
            elif index_state == IdxType.Atoms:
                value = molatom[name]
                out.append(value.reshape(n_frames * n_beads, value.shape[-1]))
            else:
                out.append(molatom[name])
        return out

    def _batch_table(self, positions: np.ndarray, cells: np.ndarray, species: np.ndarray):
        """The batch's neighbour table (kdcg.models.neighbour_table with species blocks): each
        frame's rows built once and kept (``TABLE_CACHE_BYTES``), the frames' rows stacked
        with their indices shifted to the batch's. A frame that needs more slots grows every
        block it overflows and the kept tables are built again at the new shape."""
        from kdcg.models.neighbour_table import neighbour_rows

        state = self._kdcg
        n_frames, n_beads = positions.shape[:2]
        while True:
            rows = []
            for f in range(n_frames):
                key = positions[f].tobytes() + cells[f].tobytes()
                entry = state.tables.get(key)
                if entry is None:
                    neighbour, offset, mirror, capacities, _ = neighbour_rows(
                        positions[f:f + 1], cells[f], state.cutoff_A, state.capacities, species, state.n_species)
                    if capacities != state.capacities:
                        if state.capacities is not None:
                            log.info("training kernels: pair slots per bead grown from %s to %s",
                                     list(state.capacities), list(capacities))
                        state.capacities = capacities
                        state.tables.clear()
                        state.table_bytes = 0
                        break  # the frames before this one were built at the old shape
                    entry = (neighbour, offset, mirror)
                    size = sum(t.numel() * t.element_size() for t in entry)
                    if state.table_bytes + size <= TABLE_CACHE_BYTES:
                        state.tables[key] = entry
                        state.table_bytes += size
                rows.append(entry)
            else:
                break
        slots = int(sum(state.capacities))
        per_frame = n_beads * slots
        neighbour = torch.cat([n + f * n_beads for f, (n, _, _) in enumerate(rows)])
        offset = torch.cat([o for _, o, _ in rows])
        # a frame's ghost slots point one past its own end; in the batch, one past the batch's
        mirror = torch.cat([torch.where(m < per_frame, m + f * per_frame, n_frames * per_frame)
                            for f, (_, _, m) in enumerate(rows)])
        return neighbour, offset, mirror


@contextlib.contextmanager
def kernel_engine(graph: GraphModule):
    """``graph`` (hippynn's training GraphModule of a kdcg model) trains through the kernels
    within the block, and is hippynn's graph again after it."""
    from kdcg.models.compiled_forces import graph_modules, stacked_parts

    if not kernels_apply(graph):
        raise InputError(None, "training.engine kernels: the model is not one network with one interaction layer")
    if type(graph) is not GraphModule:
        raise TypeError(f"kernel_engine needs hippynn's GraphModule, not {type(graph).__name__}")
    stacked, repulsion = stacked_parts(graph)
    modules = graph_modules(graph)
    outputs = [(node.name, node._index_state) for node in graph.nodes_to_compute]
    unknown = [name for name, _ in outputs if name not in ("forces", "forces_vs_teacher", "bead_energies", "energy")]
    if unknown:
        raise InputError(None, f"training.engine kernels cannot compute the training graph's outputs {unknown}")
    inputs = [node.db_name for node in graph.input_nodes]
    missing = {DB_POSITIONS, DB_CELLS, DB_SPECIES} - set(inputs)
    if missing:
        raise InputError(None, f"training.engine kernels: the training graph lacks the inputs {sorted(missing)}")
    cutoff_A = float(stacked.blocks[0][0].base.hard_max_dist_A)
    graph._kdcg = _KernelState(stacked, repulsion, modules["hipnn_ts"], modules["hipnn_energy"], cutoff_A,
                               int(repulsion.taper.shape[0]), inputs, outputs)
    graph.__class__ = KernelTrainingGraph
    try:
        yield graph
    finally:
        graph.__class__ = GraphModule
        del graph._kdcg

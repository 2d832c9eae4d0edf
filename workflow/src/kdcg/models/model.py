"""The CG model shared by teachers and students: HIP-NN-TS (hippynn ``HipnnQuad`` in the paper;
``model.network`` picks ``Hipnn`` or ``HipnnVec`` for a cheaper model) plus a
short-range exponential pair repulsion, as small hippynn graph nodes composed.

Energies are kcal/mol, distances Angstrom, forces kcal/mol/Angstrom.

    per-bead energy   e_i = HIP-NN-TS e_i + half of every repulsive pair energy of bead i
    system energy     E   = sum_i e_i
    forces            F   = -dE/dR   (automatic differentiation)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import hippynn_import  # noqa: F401  (before the first hippynn import)
from hippynn.graphs import IdxType
from hippynn.graphs.nodes.base import ExpandParents, MultiNode
from hippynn.graphs.nodes.base.algebra import AddNode
from hippynn.graphs.nodes.base.definition_helpers import AutoKw
from hippynn.graphs.nodes.indexers import acquire_encoding_padding
from hippynn.graphs.nodes.inputs import CellNode, PositionsNode, SpeciesNode
from hippynn.graphs.nodes.networks import Hipnn, HipnnQuad, HipnnVec
from hippynn.graphs.nodes.pairs import KDTreePairsMemory
from hippynn.graphs.nodes.physics import GradientNode
from hippynn.graphs.nodes.tags import AtomIndexer, PairIndexer
from hippynn.graphs.nodes.targets import HEnergyNode

from kdcg.models.sensitivity import InverseSensitivity


def cache_numba_kernels() -> int:
    """Let numba keep hippynn's compiled CPU kernels on disk. Compiling them costs ~14 s in
    every new process, more than a small training; cached, later processes load them."""
    try:
        import numba
        from hippynn.custom_kernels import env_numba
    except ImportError:
        return 0
    n = 0
    for cls in vars(env_numba).values():
        if not isinstance(cls, type):
            continue
        for attr in vars(cls).values():
            fn = attr.__func__ if isinstance(attr, staticmethod) else attr
            # the jitted kernel sits inside hippynn's numpy-conversion wrapper
            inner = [c.cell_contents for c in (getattr(fn, "__closure__", None) or ())] + [fn]
            for obj in inner:
                if isinstance(obj, numba.core.dispatcher.Dispatcher) and type(obj._cache).__name__ == "NullCache":
                    obj.enable_caching()
                    n += 1
    return n


cache_numba_kernels()

# names of the arrays in a training database (hippynn db_name)
DB_SPECIES, DB_POSITIONS, DB_CELLS = "species", "positions", "cells"
DB_FORCES_AA = "forces"  # mapped all-atom forces
DB_FORCES_T, DB_BEAD_ENERGIES_T, DB_ENERGY_T = "teacher_forces", "teacher_bead_energies", "teacher_energy"


class PairRepulsion(torch.nn.Module):
    """Exponential repulsion between beads, one taper distance per species pair.

    For a pair of species (a, b) with taper distance t_ab, the pair force magnitude is
    F(r) = k * exp(-alpha (r - t_ab)) with alpha = ln(1/p) / dr, so that F(t_ab) = p * s and
    F(t_ab - dr) = s: it is negligible where the AA RDF says beads do go, and as strong as a
    typical mapped force one dr closer. The pair energy is U(r) = F(r) / alpha.
    """

    def __init__(self, taper_A, strength_kcal_mol_A: float, dr_A: float, fraction_at_taper: float):
        super().__init__()
        taper = torch.as_tensor(np.asarray(taper_A, dtype=np.float32))
        if taper.ndim != 2 or taper.shape[0] != taper.shape[1]:
            raise ValueError("taper_A must be a square (species x species) table")
        self.register_buffer("taper", taper)
        self.alpha = math.log(1.0 / fraction_at_taper) / dr_A
        self.force_at_taper = fraction_at_taper * strength_kcal_mol_A

    def pair_energy(self, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (self.force_at_taper / self.alpha) * torch.exp(-self.alpha * (r - t))

    def forward(self, pair_dist, pair_first, pair_second, atom_onehot, mol_index, n_molecules):
        species = atom_onehot.to(torch.int64).argmax(dim=1)  # the encoder drops blank species 0
        n_species = self.taper.shape[0]
        # index_select: advanced indexing gathers a few times slower on a CPU
        t = self.taper.reshape(-1).index_select(0, species.index_select(0, pair_first) * n_species
                                                + species.index_select(0, pair_second))
        # hippynn pair lists hold each pair once in each direction: each listing gives its
        # first bead half of the pair energy
        half = 0.5 * self.pair_energy(pair_dist.squeeze(-1) if pair_dist.ndim > 1 else pair_dist, t)
        n_atoms = atom_onehot.shape[0]
        atom_energies = torch.zeros(n_atoms, dtype=half.dtype, device=half.device).index_add_(0, pair_first, half)
        mol_energies = torch.zeros(n_molecules, dtype=half.dtype, device=half.device).index_add_(0, mol_index, atom_energies)
        return mol_energies.unsqueeze(1), atom_energies.unsqueeze(1)


class PairRepulsionNode(ExpandParents, AutoKw, MultiNode):
    """Graph node of :class:`PairRepulsion`: system energies and per-bead energies."""

    _input_names = "pair_dist", "pair_first", "pair_second", "atom_onehot", "mol_index", "n_molecules"
    _output_names = "mol_energies", "atom_energies"
    _main_output = "mol_energies"
    _output_index_states = IdxType.Molecules, IdxType.Atoms
    _auto_module_class = PairRepulsion

    @_parent_expander.match(PairIndexer, AtomIndexer)
    def expansion(self, pairs, indexer, **kwargs):
        return pairs.pair_dist, pairs.pair_first, pairs.pair_second, indexer.indexed_features, indexer.mol_index, indexer.n_molecules

    def __init__(self, name, parents, taper_A, strength_kcal_mol_A, dr_A, fraction_at_taper, module="auto"):
        self.module_kwargs = dict(taper_A=taper_A, strength_kcal_mol_A=strength_kcal_mol_A, dr_A=dr_A,
                                  fraction_at_taper=fraction_at_taper)
        parents = self.expand_parents(parents)
        super().__init__(name, parents, module=module)


@dataclass
class CGModel:
    """The nodes a caller needs: inputs, the three predicted quantities, and the network."""

    species: SpeciesNode
    positions: PositionsNode
    cells: CellNode
    pairs: KDTreePairsMemory
    network: object  # a hippynn Hipnn, HipnnVec or HipnnQuad node (model.network)
    bead_energies: object  # e_i, IdxType.Atoms
    energy: object  # E, IdxType.Molecules
    forces: object  # -dE/dR, IdxType.MolAtom
    repulsion: PairRepulsionNode
    teacher_forces_view: object = None  # created once by kdcg.training.losses.teacher_force_view


#: model.network: HIP-NN (scalar, tensor order 0), HIP-NN-TS of tensor order 1 and 2 (the paper)
NETWORKS = {"Hipnn": Hipnn, "HipnnVec": HipnnVec, "HipnnQuad": HipnnQuad}
TENSOR_ORDER = {"Hipnn": 0, "HipnnVec": 1, "HipnnQuad": 2}


def network_class(model_cfg: dict):
    """The hippynn network node of ``model.network`` (models saved before the key: HipnnQuad)."""
    return NETWORKS[model_cfg.get("network", "HipnnQuad")]


def network_params(model_cfg: dict, n_species: int) -> dict:
    return {
        "possible_species": list(range(n_species + 1)),  # 0 is hippynn's padding
        "n_features": model_cfg["n_features"],
        "n_sensitivities": model_cfg["n_sensitivities"],
        "dist_soft_min": model_cfg["dist_soft_min_A"],
        "dist_soft_max": model_cfg["dist_soft_max_A"],
        "dist_hard_max": model_cfg["dist_hard_max_A"],
        "n_interaction_layers": model_cfg["n_interaction_layers"],
        "n_atom_layers": model_cfg["n_atom_layers"],
        "sensitivity_type": InverseSensitivity,  # hippynn's "inverse" without its denormal tail
        "resnet": True,
    }


def build_model(model_cfg: dict, n_species: int, prior: dict, pair_skin_A: float = 0.0) -> CGModel:
    """Teacher and student alike. ``prior``: taper_A (species x species), strength, dr, fraction."""
    species = SpeciesNode(name="species", db_name=DB_SPECIES)
    positions = PositionsNode(name="positions", db_name=DB_POSITIONS)
    cells = CellNode(name="cells", db_name=DB_CELLS)
    params = network_params(model_cfg, n_species)
    encoder, indexer = acquire_encoding_padding([species], species_set=params["possible_species"])
    pairs = KDTreePairsMemory("pairs", (positions, encoder, indexer, cells),
                              dist_hard_max=params["dist_hard_max"], skin=pair_skin_A)
    # named "hipnn_ts" whatever its tensor order: saved models find their modules by this name
    network = network_class(model_cfg)("hipnn_ts", (indexer, pairs), module_kwargs=params, periodic=True)
    henergy = HEnergyNode("hipnn_energy", parents=(network,))
    repulsion = PairRepulsionNode("repulsion", (pairs, indexer), taper_A=prior["taper_A"],
                                  strength_kcal_mol_A=prior["strength_kcal_mol_A"], dr_A=prior["dr_A"],
                                  fraction_at_taper=prior["fraction_at_taper"])
    bead_energies = AddNode(henergy.atom_energies, repulsion.atom_energies)
    bead_energies.name = "bead_energies"
    bead_energies.db_name = DB_BEAD_ENERGIES_T
    energy = AddNode(henergy.mol_energy, repulsion.mol_energies)
    energy.name = "energy"
    energy.db_name = DB_ENERGY_T
    forces = GradientNode("forces", (energy, positions), sign=-1)
    forces.db_name = DB_FORCES_AA
    return CGModel(species, positions, cells, pairs, network, bead_energies, energy, forces, repulsion)


def graph_node(graph, name: str):
    """The node called ``name`` among those a (loaded) graph module computes."""
    for node in graph.forward_output_list:
        if node.name == name:
            return node
    raise KeyError(f"graph has no node named {name!r}")


OUTPUT_NAMES = ("forces", "bead_energies", "energy")  # a saved model's first outputs, in this order


def member_output_name(k: int) -> str:
    return f"member_forces_{k}"


def ensemble_graph(members: list, prior: dict, model_cfg: dict, pair_skin_A: float = 0.0, stacked: bool = True):
    """One graph module that evaluates every teacher on one shared pair list.

    Inputs species, positions, cells (as a single model). Outputs: ``forces``,
    ``bead_energies`` and ``energy`` averaged over the members, then each member's forces
    (``member_forces_1`` ...), from which the spread is taken. The repulsive prior is the same
    for all and computed once. ``stacked``: the members as one batched computation
    (kdcg.models.stacked_members: their weights copied and stacked, every member's forces from one
    backward pass); otherwise each member's trained modules run one after another, a
    backward pass each (the path before; benchmarks/md.py times both).
    """
    from hippynn.graphs import GraphModule
    from hippynn.graphs.indextypes import index_type_coercion

    species = SpeciesNode(name="species", db_name=DB_SPECIES)
    positions = PositionsNode(name="positions", db_name=DB_POSITIONS)
    cells = CellNode(name="cells", db_name=DB_CELLS)
    n_species = len(prior["taper_A"])
    params = network_params(model_cfg, n_species)
    encoder, indexer = acquire_encoding_padding([species], species_set=params["possible_species"])
    pairs = KDTreePairsMemory("pairs", (positions, encoder, indexer, cells),
                              dist_hard_max=params["dist_hard_max"], skin=pair_skin_A)
    repulsion = PairRepulsionNode("repulsion", (pairs, indexer), taper_A=prior["taper_A"],
                                  strength_kcal_mol_A=prior["strength_kcal_mol_A"], dr_A=prior["dr_A"],
                                  fraction_at_taper=prior["fraction_at_taper"])
    if stacked:
        from kdcg.models.stacked_members import (MemberForces, MemberForcesNode, SelectMemberNode, StackedMembers,
                                      StackedMembersNode)

        module = StackedMembers([graph_node(m, "hipnn_ts").torch_module for m in members],
                                [graph_node(m, "hipnn_energy").torch_module for m in members])
        together = StackedMembersNode(
            "members", (indexer.indexed_features, pairs.pair_first, pairs.pair_second, pairs.pair_coord,
                        indexer.mol_index, indexer.n_molecules, repulsion.atom_energies, repulsion.mol_energies),
            module=module)
        prior_forces = GradientNode("prior_forces", (repulsion.mol_energies, positions), sign=-1)
        forces = MemberForcesNode(
            "member_forces", (together.member_mol_energies, together.member_pair_coord, pairs.pair_first,
                              pairs.pair_second, indexer.real_atoms, indexer.n_molecules, indexer.n_atoms_max,
                              prior_forces), module=MemberForces())
        member_forces = [SelectMemberNode(member_output_name(k), forces.members, k - 1)
                         for k in range(1, len(members) + 1)]
        outputs = [forces.forces, together.bead_energies, together.energy]
        for node, name in zip(outputs, OUTPUT_NAMES):
            node.name = name
        return GraphModule([species, positions, cells], outputs + member_forces)

    energies, bead_energies, member_forces = [], [], []
    for k, member in enumerate(members, start=1):
        network = network_class(model_cfg)(f"hipnn_ts_{k}", (indexer, pairs), periodic=True,
                            module=graph_node(member, "hipnn_ts").torch_module)
        henergy = HEnergyNode(f"hipnn_energy_{k}", (network,),
                              module=graph_node(member, "hipnn_energy").torch_module)
        energy_k = AddNode(henergy.mol_energy, repulsion.mol_energies)
        energies.append(energy_k)
        bead_energies.append(AddNode(henergy.atom_energies, repulsion.atom_energies))
        member_forces.append(GradientNode(member_output_name(k), (energy_k, positions), sign=-1))
    n = float(len(members))

    def mean(nodes, name, index_state):
        total = nodes[0]
        for node in nodes[1:]:
            total = total + node
        # algebra nodes reduce to the most compact index state; restore the members' one
        out = index_type_coercion(total / n, index_state)
        out.name = name
        return out

    outputs = [mean(member_forces, "forces", IdxType.MolAtom), mean(bead_energies, "bead_energies", IdxType.Atoms),
               mean(energies, "energy", IdxType.Molecules)]
    return GraphModule([species, positions, cells], outputs + member_forces)

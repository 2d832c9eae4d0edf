"""The members of an ensemble evaluated as one computation: their weights stacked member by
member, each HIP-NN layer run once for all members (batched matrix products; hippynn's envsum
kernel once, on the pairs repeated per member with their beads offset by member * beads), and
every member's forces from one backward pass through a per-member copy of the pair vectors.

A member-by-member ensemble launches every kernel once per member and runs one backward pass
per member; on a GPU a 1,000-bead frame is bound by those launches, not by arithmetic, and all
members go in one pass. The arithmetic is the same either way; on a CPU the members go in
passes small enough for their arrays to stay in cache (``StackedMembers.automatic_members_per_pass``).
Results equal the member-by-member ones up to the order of floating-point sums
(tests/unit/test_model.py).

Shapes: M members, N beads, P pairs (both directions), S sensitivities, F features.
"""

from __future__ import annotations

import math

import torch

from . import hippynn_import  # noqa: F401  (before the first hippynn import)
from hippynn import custom_kernels
from hippynn.graphs import IdxType
from hippynn.graphs.nodes.base import MultiNode, SingleNode
from hippynn.layers.hiplayers.interactions import InteractLayer, InteractLayerQuad, InteractLayerVec
from hippynn.layers.hiplayers.sensitivity import CosCutoff, InverseSensitivityModule
from hippynn.layers.transform import ResNetWrapper

from kdcg.models.sensitivity import InverseSensitivity, inverse_gaussians


ALL = slice(None)  # every member of a stack
# on a CPU, members evaluated in one pass keep their largest arrays within this many bytes.
# benchmarks/ensemble_passes.py (8 members, 1,000 beads, 2 threads, Intel Xeon @ 2.50 GHz,
# 2026-11-27; bare ms): the default's network (1.1 MB per member: 7 fit, 2 passes of 4) 90.5 /
# 84.1 / 66.9 / 71.3 in passes of 1 / 2 / 4 / 8 members, 107.4 member by member; the paper's
# (35 MB per member) 1,018 / 1,079 / 1,360 in passes of 1 / 2 / 8, 1,126 member by member
CPU_BYTES_PER_PASS = 8 * 2 ** 20


def _stacked(tensors, tied: bool = False) -> torch.Tensor:
    """The members' tensors stacked: copies, or with ``tied`` a function of them that autograd
    follows back to the members' parameters (training through a stack, ``StackedMembers.tie``)."""
    return torch.stack(list(tensors)) if tied else torch.stack([t.detach().clone() for t in tensors])


class StackedLinear(torch.nn.Module):
    """M ``torch.nn.Linear`` layers of one shape: x (M, N, in) -> (M, N, out)."""

    def __init__(self, layers: list[torch.nn.Linear]):
        super().__init__()
        self.register_buffer("weight", None)
        self.register_buffer("bias", None)
        self.take(layers)

    def take(self, layers: list[torch.nn.Linear], tied: bool = False) -> None:
        """The members' weights, copied or tied (``_stacked``)."""
        self.weight = _stacked([lay.weight.t() for lay in layers], tied)  # (M, in, out)
        has_bias = layers[0].bias is not None
        self.bias = _stacked([lay.bias.unsqueeze(0) for lay in layers], tied) if has_bias else None

    def forward(self, x: torch.Tensor, members: slice = ALL) -> torch.Tensor:
        """x (M', N, in) for the members ``members`` picks, or (N, in) shared by them."""
        weight = self.weight[members]
        if self.bias is None:
            return torch.matmul(x, weight)
        bias = self.bias[members]
        return torch.baddbmm(bias, x, weight) if x.ndim == 3 else torch.matmul(x, weight) + bias


class StackedInteraction(torch.nn.Module):
    """M hippynn interaction layers (``InteractLayer``, ``-Vec`` or ``-Quad``: tensor order 0, 1,
    2) with inverse sensitivities and the cosine cutoff, evaluated as hippynn's forward does."""

    def __init__(self, layers: list[InteractLayer]):
        super().__init__()
        kinds = {type(lay) for lay in layers}
        if len(kinds) != 1 or not kinds <= {InteractLayer, InteractLayerVec, InteractLayerQuad}:
            raise TypeError(f"members' interaction layers must be one of hippynn's HIP-NN(-TS) kinds, got {kinds}")
        kind = kinds.pop()
        self.order = {InteractLayer: 0, InteractLayerVec: 1, InteractLayerQuad: 2}[kind]
        first = layers[0]
        for lay in layers:
            sens = lay.sensitivity
            if type(sens) not in (InverseSensitivityModule, InverseSensitivity) or type(sens.cutoff) is not CosCutoff:
                raise TypeError("stacked members need hippynn's inverse sensitivities and cosine cutoff")
        self.n_dist, self.nf_in, self.nf_out = first.n_dist, first.nf_in, first.nf_out
        self.hard_max_dist_A = float(first.sensitivity.hard_max_dist)
        for name in ("mu", "sigma", "int_weights") + (("vecscales",) if self.order >= 1 else ()) + (
                ("quadscales",) if self.order == 2 else ()):
            self.register_buffer(name, None)
        self.selfint = StackedLinear([lay.selfint for lay in layers])
        self.take(layers)
        if self.order >= 1:
            self.cusp_reg = float(first.cusp_reg)
        if self.order == 2:
            self.register_buffer("upper_ind", torch.as_tensor([0, 1, 2, 4, 5], dtype=torch.int64), persistent=False)

    def take(self, layers: list[InteractLayer], tied: bool = False) -> None:
        """The members' weights, copied or tied (``_stacked``)."""
        self.mu = _stacked([lay.sensitivity.mu for lay in layers], tied)  # (M, 1, S)
        self.sigma = _stacked([lay.sensitivity.sigma for lay in layers], tied)
        # hippynn's (S, out, in) weights as one (S * in, out) matrix per member
        self.int_weights = _stacked([lay.int_weights.permute(0, 2, 1).reshape(self.n_dist * self.nf_in, self.nf_out)
                                     for lay in layers], tied)
        self.selfint.take([lay.selfint for lay in layers], tied)
        if self.order >= 1:
            self.vecscales = _stacked([lay.vecscales.unsqueeze(0) for lay in layers], tied)
        if self.order == 2:
            self.quadscales = _stacked([lay.quadscales.unsqueeze(0) for lay in layers], tied)

    @property
    def n_components(self) -> int:
        """Sensitivity components per pair: scalar, + 3 vector, + 5 quadrupole."""
        return (1, 4, 9)[self.order]

    def sensitivities(self, dist: torch.Tensor, members: slice = ALL) -> torch.Tensor:
        """(M, P) distances (A) -> (M, P, S), as kdcg.models.sensitivity.InverseSensitivity and CosCutoff."""
        base = inverse_gaussians(dist.unsqueeze(-1), self.mu[members], self.sigma[members])
        cutoff = torch.cos(math.pi / 2 * dist / self.hard_max_dist_A) ** 2
        cutoff = cutoff * (dist <= self.hard_max_dist_A).to(cutoff.dtype)
        return base * cutoff.unsqueeze(-1)

    def forward(self, features, first_rep, second_rep, dist, coord, members: slice = ALL):
        """features (M, N, in); first_rep, second_rep (M * P,) beads of the member-replicated
        frame; dist (M, P) A; coord (M, P, 3) A; M members, ``members`` of the stack. Returns
        (M, N, out)."""
        n_members, n_beads, _ = features.shape
        n_pairs = dist.shape[1]
        sense = self.sensitivities(dist, members)
        parts = [sense]
        if self.order >= 1:
            rhats = coord / dist.unsqueeze(-1)
            parts.append((sense.unsqueeze(2) * rhats.unsqueeze(3)).reshape(n_members, n_pairs, 3 * self.n_dist))
        if self.order == 2:
            quad = rhats.unsqueeze(3) * rhats.unsqueeze(2)
            quad = (quad + quad.transpose(2, 3)) / 2
            trace = torch.diagonal(quad, dim1=2, dim2=3).sum(dim=2) / 3.0
            quad = quad - trace[..., None, None] * torch.eye(3, dtype=quad.dtype, device=quad.device)
            quad = quad.reshape(n_members, n_pairs, 9)[..., self.upper_ind]
            parts.append((sense.unsqueeze(2) * quad.unsqueeze(3)).reshape(n_members, n_pairs, 5 * self.n_dist))
        stacked = torch.cat(parts, dim=2)
        stacked = stacked.reshape(n_members * n_pairs, stacked.shape[2])  # explicit width: a frame may hold no pair
        env = custom_kernels.envsum(stacked, features.reshape(n_members * n_beads, self.nf_in), first_rep, second_rep)
        env = env.reshape(n_members, n_beads, self.n_components, self.n_dist * self.nf_in)

        return self.environment_output(env, members)[0] + self.selfint(features, members)

    def environment_output(self, env: torch.Tensor, members: slice = ALL):
        """The interaction's output before its self-interaction, from the environment sums env
        (M, N, components, S * F_in): (output (M, N, F_out), then the vector part's products
        (M, N, 3, F_out) and norms (M, N, F_out) and the quadrupole part's, None for an order
        without them; kdcg.models.dense_network differentiates through them)."""
        n_members, n_beads = env.shape[:2]
        int_weights = self.int_weights[members]
        vec = vec_norm = quad = quad_norm = None
        out = torch.bmm(env[:, :, 0].contiguous(), int_weights)
        if self.order >= 1:
            vec = torch.bmm(env[:, :, 1:4].reshape(n_members, n_beads * 3, -1), int_weights)
            vec = vec.reshape(n_members, n_beads, 3, self.nf_out)
            vec_norm = torch.sqrt(torch.square(vec).sum(dim=2) + self.cusp_reg)
            out = out + vec_norm * self.vecscales[members]
        if self.order == 2:
            quad = torch.bmm(env[:, :, 4:9].reshape(n_members, n_beads * 5, -1), int_weights)
            quad = quad.reshape(n_members, n_beads, 5, self.nf_out)
            norm = 2 * (torch.square(quad).sum(dim=2) + quad[:, :, 0, :] * quad[:, :, 3, :])
            quad_norm = torch.sqrt(norm + self.cusp_reg)
            out = out + quad_norm * self.quadscales[members]
        return out, vec, vec_norm, quad, quad_norm


class StackedResNet(torch.nn.Module):
    """M hippynn ``ResNetWrapper`` of one shape: res(act(base(x, ...))) + adjust(x)."""

    def __init__(self, wrappers: list[ResNetWrapper], base: torch.nn.Module):
        super().__init__()
        self.base = base
        self.activation = wrappers[0].activation
        self.res = StackedLinear([w.res_layer for w in wrappers])
        self.adjust = StackedLinear([w.adjust_layer for w in wrappers]) if wrappers[0].needs_size_adjust else None

    def take(self, wrappers: list[ResNetWrapper], tied: bool = False) -> None:
        """The members' weights, copied or tied (``_stacked``), this wrapper's base layer's too."""
        self.base.take([w.base_layer for w in wrappers], tied)
        self.res.take([w.res_layer for w in wrappers], tied)
        if self.adjust is not None:
            self.adjust.take([w.adjust_layer for w in wrappers], tied)

    def forward(self, features, *pair_inputs, members: slice = ALL):
        difference = self.res(self.activation(self.base(features, *pair_inputs, members=members)), members)
        return difference + (self.adjust(features, members) if self.adjust is not None else features)


class StackedMembers(torch.nn.Module):
    """M trained members (hippynn HIP-NN(-TS) network + HEnergy head each, resnet layers, as
    kdcg.models.model builds them) as one module: their bead and system energies, the mean of them
    with the shared prior added, and the per-member copy of the pair vectors they came from
    (``MemberForces`` takes each member's forces from it)."""

    def __init__(self, networks: list[torch.nn.Module], heads: list[torch.nn.Module]):
        super().__init__()
        if not all(net.resnet is True for net in networks):
            raise TypeError("stacked members need hippynn networks built with resnet=True")
        self.n_members = len(networks)
        self.blocks = torch.nn.ModuleList()
        for b in range(len(networks[0].blocks)):
            layers = [net.blocks[b] for net in networks]
            interaction = StackedInteraction([blk[0].base_layer for blk in layers])
            block = torch.nn.ModuleList([StackedResNet([blk[0] for blk in layers], interaction)])
            for j in range(1, len(layers[0])):
                block.append(StackedResNet([blk[j] for blk in layers], StackedLinear([blk[j].base_layer for blk in layers])))
            self.blocks.append(block)
        if any(head.first_is_interacting for head in heads):
            raise TypeError("stacked members need HEnergy heads over every feature level")
        self.head = torch.nn.ModuleList(StackedLinear([head.layers[k] for head in heads]) for k in range(len(heads[0].layers)))
        self.members_per_pass: int | None = None  # None: automatic_members_per_pass

    def tie(self, networks: list[torch.nn.Module], heads: list[torch.nn.Module]) -> None:
        """Every stacked tensor made anew as a function of these members' parameters (the ones
        the stack was built from, or of the same shapes), so that a loss computed through the
        stack trains them (kdcg.training.kernel_graph). Autograd frees such a graph after each
        backward pass, so a training ties again before each batch."""
        for b, block in enumerate(self.blocks):
            for j, wrapper in enumerate(block):
                wrapper.take([net.blocks[b][j] for net in networks], tied=True)
        for k, head in enumerate(self.head):
            head.take([h.layers[k] for h in heads], tied=True)

    def forward(self, onehot, pair_first, pair_second, pair_coord, mol_index, n_molecules,
                prior_atom_energies, prior_mol_energies):
        """Returns mean bead energies (N, 1), mean system energies (molecules, 1) (prior
        included, kcal/mol), each member's system energies without the prior (M, molecules),
        and the per-member pair vectors (M, P, 3) A they are a function of."""
        m = self.n_members
        member_coord = pair_coord.unsqueeze(0).expand(m, -1, -1)  # each member differentiates its own copy
        per_pass = self.members_per_pass or self.automatic_members_per_pass(onehot.shape[0], len(pair_first),
                                                                           pair_coord.device)
        atom_energies = torch.cat([
            self.atom_energies(onehot, pair_first, pair_second, member_coord[start:start + per_pass],
                               slice(start, start + per_pass))
            for start in range(0, m, per_pass)])  # (M, N)
        member_mol = torch.zeros(m, int(n_molecules), dtype=atom_energies.dtype, device=atom_energies.device)
        member_mol = member_mol.index_add(1, mol_index, atom_energies)
        bead_energies = atom_energies.mean(dim=0).unsqueeze(1) + prior_atom_energies
        energy = member_mol.mean(dim=0).unsqueeze(1) + prior_mol_energies
        return bead_energies, energy, member_mol, member_coord

    def automatic_members_per_pass(self, n_beads: int, n_pairs: int, device: torch.device) -> int:
        """All members in one pass on a GPU, where launches set the cost. On a CPU as many as
        keep a pass's largest arrays (sensitivities and environment sums, float32) within
        CPU_BYTES_PER_PASS, in passes of equal size: measured (benchmarks/md.py), all 8
        members of the paper's network at once were slower than one after another."""
        if device.type != "cpu":
            return self.n_members
        per_member = 4 * sum(lay.n_components * lay.n_dist * (n_pairs + n_beads * lay.nf_in)
                             for lay in self.interactions())
        fit = max(1, min(self.n_members, CPU_BYTES_PER_PASS // max(per_member, 1)))
        n_passes = math.ceil(self.n_members / fit)
        return math.ceil(self.n_members / n_passes)

    def interactions(self) -> list[StackedInteraction]:
        return [block[0].base for block in self.blocks]

    def atom_energies(self, onehot, pair_first, pair_second, coord, members: slice) -> torch.Tensor:
        """Bead energies (M', N) kcal/mol of the members ``members`` picks, from their copies
        of the pair vectors, coord (M', P, 3) A."""
        k, n_beads = coord.shape[0], onehot.shape[0]
        dist = coord.norm(dim=2)
        shift = (torch.arange(k, device=pair_first.device) * n_beads).unsqueeze(1)
        first_rep = (pair_first.unsqueeze(0) + shift).reshape(-1)
        second_rep = (pair_second.unsqueeze(0) + shift).reshape(-1)
        level0 = onehot.to(dist.dtype)
        features = level0.unsqueeze(0).expand(k, -1, -1).contiguous()
        levels = [level0]
        for block in self.blocks:
            features = block[0](features, first_rep, second_rep, dist, coord, members=members)
            for layer in block[1:]:
                features = layer(features, members=members)
            levels.append(features)
        # hippynn's HEnergy: the sum of a linear read-out of every feature level
        return sum(head(x, members) for head, x in zip(self.head, levels)).squeeze(2)


class MemberForces(torch.nn.Module):
    """Every member's forces (kcal/mol/A) from one backward pass: member m's energies depend
    on the pair vectors only through member m's copy of them, so one gradient of the summed
    energies holds each member's pair gradients apart."""

    def forward(self, member_mol, member_coord, pair_first, pair_second, real_atoms, n_molecules, n_atoms_max,
                prior_forces):
        (pair_grad,) = torch.autograd.grad(member_mol.sum(), member_coord, retain_graph=True)
        m = member_mol.shape[0]
        n_beads = real_atoms.shape[0]
        # pair vector = R[first] - R[second] + image offset; F = -dE/dR
        net = torch.zeros(m, n_beads, 3, dtype=pair_grad.dtype, device=pair_grad.device)
        net = net.index_add(1, pair_first, -pair_grad).index_add(1, pair_second, pair_grad)
        padded = torch.zeros(m, int(n_molecules) * int(n_atoms_max), 3, dtype=net.dtype, device=net.device)
        padded[:, real_atoms] = net
        members = padded.reshape(m, int(n_molecules), int(n_atoms_max), 3) + prior_forces.unsqueeze(0)
        return members.mean(dim=0), members


class SelectMember(torch.nn.Module):
    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, stacked):
        return stacked[self.k]


class StackedMembersNode(MultiNode):
    _input_names = ("onehot", "pair_first", "pair_second", "pair_coord", "mol_index", "n_molecules",
                    "prior_atom_energies", "prior_mol_energies")
    _output_names = ("bead_energies", "energy", "member_mol_energies", "member_pair_coord")
    _output_index_states = (IdxType.Atoms, IdxType.Molecules, IdxType.NotFound, IdxType.NotFound)
    _main_output = "energy"


class MemberForcesNode(MultiNode):
    _input_names = ("member_mol_energies", "member_pair_coord", "pair_first", "pair_second", "real_atoms",
                    "n_molecules", "n_atoms_max", "prior_forces")
    _output_names = ("forces", "members")
    _output_index_states = (IdxType.MolAtom, IdxType.NotFound)
    _main_output = "forces"


class SelectMemberNode(SingleNode):
    _input_names = ("stacked",)
    _index_state = IdxType.MolAtom

    def __init__(self, name, parent, k: int):
        super().__init__(name, (parent,), module=SelectMember(k))

"""kdcg's models (one network or a stacked ensemble; HIP-NN or HIP-NN-TS of tensor order 1 or 2;
with the repulsive prior) over a neighbour table of fixed shape (kdcg.models.neighbour_table),
in plain PyTorch operations a compiler can fuse: no custom kernels, no host synchronisation, no
shape that depends on the data.

The environment sum that hippynn scatters pair by pair (``envsum``) is here, for each bead, a
small matrix product over its row of neighbours: env[i] = sense[i]^T (K x C*S) @ features of
the neighbours (K x F). Replicas and ensemble members are leading batch dimensions of every
tensor. The weights are those of kdcg.models.stacked_members.StackedMembers (a single model is a
stack of one) and of the prior's kdcg.models.model.PairRepulsion; the arithmetic is hippynn's,
so energies and forces equal the eager path's up to the order of floating-point sums
(tests/unit/test_compiled_forces.py states the tolerance).

Shapes: M members, B frames (replicas), N beads, K slots per bead, S sensitivities, C
components (1 scalar, + 3 vector, + 5 quadrupole), F features.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from kdcg.models.model import PairRepulsion
from kdcg.models.sensitivity import inverse_gaussians
from kdcg.models.stacked_members import StackedInteraction, StackedMembers


def pair_vectors(positions_A: torch.Tensor, neighbour: torch.Tensor, offset_A: torch.Tensor) -> torch.Tensor:
    """positions (..., B, N, 3) A; neighbour (B, N, K) flat indices b * N + j; offset (B, N, K, 3)
    A. Returns R_i - R_j + offset (..., B, N, K, 3), the pair vector as hippynn forms it."""
    lead = positions_A.shape[:-3]
    n_frames, n_beads, capacity = neighbour.shape
    flat = positions_A.reshape(*lead, n_frames * n_beads, 3)
    others = flat.index_select(-2, neighbour.reshape(-1)).reshape(*lead, n_frames, n_beads, capacity, 3)
    return positions_A.unsqueeze(-2) - others + offset_A


def dense_interaction(layer: StackedInteraction, features: torch.Tensor, neighbour: torch.Tensor,
                      coord: torch.Tensor, dist: torch.Tensor, members: slice) -> torch.Tensor:
    """One stacked HIP-NN(-TS) interaction layer over the table: features (M', B*N, F_in),
    coord (M', B, N, K, 3) A, dist (M', B, N, K) A. Returns (M', B*N, F_out), as
    StackedInteraction.forward computes it from a sparse pair list."""
    n_members, n_frames, n_beads, capacity = dist.shape
    s = layer.n_dist
    mu = layer.mu[members].reshape(n_members, 1, 1, 1, s)
    sigma = layer.sigma[members].reshape(n_members, 1, 1, 1, s)
    base = inverse_gaussians(dist.unsqueeze(-1), mu, sigma)
    cut = torch.cos(math.pi / 2 * dist / layer.hard_max_dist_A) ** 2 * (dist <= layer.hard_max_dist_A).to(dist.dtype)
    sense = base * cut.unsqueeze(-1)  # (M', B, N, K, S)
    parts = [sense.unsqueeze(-2)]
    if layer.order >= 1:
        rhats = coord / dist.unsqueeze(-1)
        parts.append(rhats.unsqueeze(-1) * sense.unsqueeze(-2))  # (..., K, 3, S)
    if layer.order == 2:
        quad = rhats.unsqueeze(-1) * rhats.unsqueeze(-2)  # symmetric already
        trace = (rhats * rhats).sum(-1) / 3.0
        # the five upper components hippynn keeps: xx, xy, xz, yy, yz, traceless
        upper = torch.stack([quad[..., 0, 0] - trace, quad[..., 0, 1], quad[..., 0, 2], quad[..., 1, 1] - trace,
                             quad[..., 1, 2]], dim=-1)
        parts.append(upper.unsqueeze(-1) * sense.unsqueeze(-2))  # (..., K, 5, S)
    components = torch.cat(parts, dim=-2)  # (M', B, N, K, C, S)
    n_comp = components.shape[-2]
    rows = n_members * n_frames * n_beads
    components = components.reshape(rows, capacity, n_comp * s)
    nf_in = features.shape[-1]
    flat_neighbour = neighbour.reshape(-1)
    neighbour_features = features.index_select(1, flat_neighbour).reshape(rows, capacity, nf_in)
    env = torch.bmm(components.transpose(1, 2), neighbour_features)  # (rows, C*S, F_in)
    env = env.reshape(n_members, n_frames * n_beads, n_comp, s * nf_in)
    return layer.environment_output(env, members)[0] + layer.selfint(features, members)


class DenseNetwork(torch.nn.Module):
    """Energies of M members and the prior on B frames of one system over a neighbour table.

    ``forward(member_positions (M, B, N, 3), prior_positions (B, N, 3), neighbour, offset)``
    returns the members' system energies without the prior (M, B), the prior's system energies
    (B,) and the mean bead energies with the prior (B, N), kcal/mol. Each member and the prior
    read their own copy of the positions, so one backward pass gives each member's forces apart
    (as kdcg.models.stacked_members.MemberForces does)."""

    def __init__(self, stacked: StackedMembers, repulsion: PairRepulsion, species, cutoff_A: float,
                 members_per_pass: int | None = None):
        super().__init__()
        self.stacked, self.repulsion = stacked, repulsion
        self.cutoff_A = float(cutoff_A)
        species = torch.as_tensor(species, dtype=torch.int64)
        n_species = repulsion.taper.shape[0]
        self.register_buffer("species", species)
        # the encoder's one-hot: species 1..S in columns 0..S-1 (0 is hippynn's blank)
        self.register_buffer("onehot", torch.nn.functional.one_hot(species - 1, n_species).to(torch.float32))
        self.members_per_pass = members_per_pass or stacked.n_members

    @property
    def n_members(self) -> int:
        return self.stacked.n_members

    def prior_energies(self, positions_A, neighbour, offset_A):
        """(B,) system and (B, N) bead energies of the repulsive prior, kcal/mol."""
        n_frames, n_beads, _ = neighbour.shape
        coord = pair_vectors(positions_A, neighbour, offset_A)
        dist = coord.norm(dim=-1)  # (B, N, K)
        n_species = self.repulsion.taper.shape[0]
        species = self.species.repeat(n_frames)
        neighbour_species = species.index_select(0, neighbour.reshape(-1)).reshape(neighbour.shape)
        taper = self.repulsion.taper.reshape(-1).index_select(
            0, (self.species.reshape(1, n_beads, 1) * n_species + neighbour_species).reshape(-1) - (n_species + 1))
        taper = taper.reshape(neighbour.shape)
        # each pair is listed from both of its beads: each listing gives its bead half
        half = 0.5 * self.repulsion.pair_energy(dist, taper) * (dist < self.cutoff_A).to(dist.dtype)
        bead = half.sum(-1)
        return bead.sum(-1), bead

    def member_bead_energies(self, positions_A, neighbour, offset_A, members: slice) -> torch.Tensor:
        """(M', B * N) bead energies of the members ``members`` picks, without the prior."""
        coord = pair_vectors(positions_A, neighbour, offset_A)  # (M', B, N, K, 3)
        dist = coord.norm(dim=-1)
        n_members = coord.shape[0]
        level0 = self.onehot.repeat(neighbour.shape[0], 1)  # (B*N, species)
        features = level0.unsqueeze(0).expand(n_members, -1, -1).contiguous()
        levels = [features]
        for block in self.stacked.blocks:
            wrapper = block[0]
            interaction = dense_interaction(wrapper.base, features, neighbour, coord, dist, members)
            difference = wrapper.res(wrapper.activation(interaction), members)
            features = difference + (wrapper.adjust(features, members) if wrapper.adjust is not None else features)
            for layer in block[1:]:
                features = layer(features, members=members)
            levels.append(features)
        return sum(head(x, members) for head, x in zip(self.stacked.head, levels)).squeeze(-1)

    def forward(self, member_positions_A, prior_positions_A, neighbour, offset_A):
        n_frames, n_beads, _ = neighbour.shape
        per_pass = self.members_per_pass
        bead = torch.cat([
            self.member_bead_energies(member_positions_A[start:start + per_pass], neighbour, offset_A,
                                      slice(start, start + per_pass))
            for start in range(0, self.n_members, per_pass)]).reshape(self.n_members, n_frames, n_beads)
        prior_energy, prior_bead = self.prior_energies(prior_positions_A, neighbour, offset_A)
        return bead.sum(-1), prior_energy, bead.mean(0) + prior_bead


def activation_slope(activation: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d activation / dx of hippynn's softplus (torch.nn.Softplus: linear above its threshold)."""
    beta, threshold = float(activation.beta), float(activation.threshold)
    return torch.where(beta * x > threshold, torch.ones_like(x), torch.sigmoid(beta * x))


def analytic_forces_apply(stacked: StackedMembers) -> bool:
    """Forces without autograd (``AnalyticForces``) need what every kdcg config builds: one
    interaction block, whose input is the species one-hot, and softplus activations."""
    return (len(stacked.blocks) == 1 and all(isinstance(layer.activation, torch.nn.Softplus)
                                             for layer in stacked.blocks[0]))


def bead_layers(net: "DenseNetwork", env: torch.Tensor, n_frames: int, n_beads: int):
    """The per-bead part of a one-block network (``analytic_forces_apply``), forward and back:
    from the environment sums env (M, B*N, C, S*F_in) to the bead energies without the prior
    (M, B, N) kcal/mol and dE/d env (M, B*N, C, S, F_in), the derivative written out (the
    chain through the atom layers, then the transpose of the interaction's weights)."""
    stacked = net.stacked
    wrapper = stacked.blocks[0][0]
    layer = wrapper.base
    m, nb = env.shape[0], env.shape[1]
    s = layer.n_dist
    n_species = net.onehot.shape[1]
    weights = layer.int_weights  # (M, S*F_in, F_out)
    x0 = net.onehot.repeat(n_frames, 1).unsqueeze(0).expand(m, -1, -1).contiguous()  # (M, B*N, F_in)
    out, vec, vec_norm, quad, quad_norm = layer.environment_output(env)
    interaction = out + layer.selfint(x0)
    # the per-bead layers, forward, keeping what their derivative needs
    features = wrapper.res(wrapper.activation(interaction)) + (wrapper.adjust(x0) if wrapper.adjust is not None else x0)
    inputs = []
    for atom_layer in stacked.blocks[0][1:]:
        pre = atom_layer.base(features)
        inputs.append(pre)
        features = atom_layer.res(atom_layer.activation(pre)) + (
            atom_layer.adjust(features) if atom_layer.adjust is not None else features)
    head0, head1 = stacked.head
    bead = (head0(x0) + head1(features)).squeeze(-1).reshape(m, n_frames, n_beads)
    # backward through the per-bead layers: dE/d(features), then dE/d(interaction output)
    grad = head1.weight.transpose(1, 2).expand(m, nb, -1)  # (M, B*N, F)
    for atom_layer, pre in zip(reversed(stacked.blocks[0][1:]), reversed(inputs)):
        through = torch.matmul(grad, atom_layer.res.weight.transpose(1, 2)) * activation_slope(atom_layer.activation, pre)
        through = torch.matmul(through, atom_layer.base.weight.transpose(1, 2))
        skip = torch.matmul(grad, atom_layer.adjust.weight.transpose(1, 2)) if atom_layer.adjust is not None else grad
        grad = through + skip
    grad_out = torch.matmul(grad, wrapper.res.weight.transpose(1, 2)) * activation_slope(wrapper.activation, interaction)
    weights_t = weights.transpose(1, 2)  # (M, F_out, S*F_in)
    grad_env = [torch.bmm(grad_out, weights_t)]  # (M, B*N, S*F_in) per component
    if layer.order >= 1:
        grad_vec = (grad_out * layer.vecscales / vec_norm).unsqueeze(2) * vec  # (M, B*N, 3, F_out)
        grad_env.append(torch.bmm(grad_vec.reshape(m, nb * 3, -1), weights_t).reshape(m, nb, 3, -1))
    if layer.order == 2:
        grad_q = 2 * quad
        grad_q = grad_q + torch.stack([quad[:, :, 3], torch.zeros_like(quad[:, :, 0]), torch.zeros_like(quad[:, :, 0]),
                                       quad[:, :, 0], torch.zeros_like(quad[:, :, 0])], dim=2)
        grad_q = (grad_out * layer.quadscales / quad_norm).unsqueeze(2) * grad_q
        grad_env.append(torch.bmm(grad_q.reshape(m, nb * 5, -1), weights_t).reshape(m, nb, 5, -1))
    grad_env = torch.cat([g.reshape(m, nb, -1, s, n_species) for g in grad_env], dim=2)  # (M, B*N, C, S, F_in)
    return bead, grad_env


class AnalyticForces(torch.nn.Module):
    """Energies and each member's forces of a one-block network (``analytic_forces_apply``)
    without autograd: the derivative written out, so that one compiled forward graph holds it.

    With the one-hot species as the interaction's input, the positions enter only through the
    pairs' sensitivities: the derivative of the bead energies with respect to the interaction's
    output is a per-bead chain through the atom layers; its transpose through the interaction
    weights gives, for each pair, the derivative with respect to its sensitivity components (a
    read of the bead's row at the neighbour's species, where hippynn's backward scatters; the
    table groups each row by neighbour species, so that both directions are sums and broadcasts
    over one block, not products with one-hot vectors); the chain rule through
    the pair's distance and direction gives dE/d(pair vector) g_ik; and the force on bead i is
    -sum_k g_ik plus the g of its listings from its neighbours, read through the table's mirror
    slots (a gather again). Returns the members' system energies without the prior (M, B), the
    prior's (B,), mean bead energies with the prior (B, N) kcal/mol, and every member's forces
    with the prior (M, B, N, 3) kcal/mol/A."""

    def __init__(self, network: DenseNetwork):
        super().__init__()
        if not analytic_forces_apply(network.stacked):
            raise TypeError("analytic forces need one interaction block and softplus activations")
        self.network = network

    def forward(self, positions_A, neighbour, offset_A, mirror, blocks: tuple):
        """``blocks``: the slots of each neighbour species in a row (kdcg.models.neighbour_table
        with species): constants of the compiled graph."""
        net = self.network
        stacked = net.stacked
        n_frames, n_beads, capacity = neighbour.shape
        m = stacked.n_members
        nb = n_frames * n_beads
        # slots last: every per-pair array is (..., K) with the slots contiguous, so the compiled
        # loops fill their vector lanes (with 3 or S = 10 innermost most lanes stayed idle)
        coord = pair_vectors(positions_A, neighbour, offset_A).transpose(-1, -2)  # (B, N, 3, K)
        dist = coord.norm(dim=-2)  # (B, N, K)
        rhat = coord / dist.unsqueeze(-2)
        wrapper = stacked.blocks[0][0]
        layer = wrapper.base
        s = layer.n_dist
        d = dist.unsqueeze(-2)  # (B, N, 1, K)
        mu = layer.mu.reshape(m, 1, 1, s, 1)
        sigma = layer.sigma.reshape(m, 1, 1, s, 1)
        base = inverse_gaussians(d, mu, sigma)  # (M, B, N, S, K)
        angle = math.pi / 2 * dist / layer.hard_max_dist_A
        inside = (dist <= layer.hard_max_dist_A).to(dist.dtype)
        cut = (torch.cos(angle) ** 2 * inside).unsqueeze(-2)
        cut_slope = (-(math.pi / 2 / layer.hard_max_dist_A) * torch.sin(2 * angle) * inside).unsqueeze(-2)
        sense = base * cut
        inverse_gap = d ** -1 - mu ** -1
        sense_slope = base * (cut * inverse_gap * sigma ** 2 / d ** 2 + cut_slope)  # d sense / d r
        # angular factors Y_c of the components (hippynn's order): 1; x, y, z; xx-t, xy, xz, yy-t, yz
        x, y, z = rhat.unbind(-2)
        factors = [torch.ones_like(x)]
        if layer.order >= 1:
            factors += [x, y, z]
        if layer.order == 2:
            t = (x * x + y * y + z * z) / 3.0
            factors += [x * x - t, x * y, x * z, y * y - t, y * z]
        n_comp = len(factors)
        angular = torch.stack(factors, dim=-2)  # (B, N, C, K)
        n_species = net.onehot.shape[1]
        if len(blocks) != n_species:
            raise ValueError(f"the table has {len(blocks)} species blocks, the model {n_species} species")
        bounds = [(sum(blocks[:f]), sum(blocks[:f + 1])) for f in range(n_species)]
        # env[i, c, s, f] = sum over the neighbours k of species f (one block of the row) of
        # Y_c(k) sense_s(k): per bead and block a (C x K_f) @ (K_f x S) product, so that the
        # (K, C, S) outer products are never formed (9 x the slots' sensitivities for HIP-NN-TS)
        env = torch.stack([torch.matmul(angular[..., lo:hi], sense[..., lo:hi].transpose(-1, -2)) for lo, hi in bounds],
                          dim=-1)  # (M, B, N, C, S, F)
        env = env.reshape(m, nb, n_comp, s * n_species)
        bead, grad_env = bead_layers(net, env, n_frames, n_beads)  # (M, B, N), (M, B*N, C, S, F_in)
        # each pair's dE/d(components) is the bead's row G (C x S) at its neighbour's species,
        # the same for every slot of a block; contracted with the slot's factors as products:
        # dE/dr_k = sum_s (Y(k) G)_s sense'_s(k), dE/dY_c(k) = (sense(k) G^T)_c
        grad_env = grad_env.reshape(m, n_frames, n_beads, n_comp, s, n_species)
        grad_dist, grad_angular = [], []
        for f, (lo, hi) in enumerate(bounds):
            row = grad_env[..., f]  # (M, B, N, C, S)
            grad_dist.append((torch.matmul(row.transpose(-1, -2), angular[..., lo:hi]) * sense_slope[..., lo:hi]).sum(-2))
            grad_angular.append(torch.matmul(row, sense[..., lo:hi]))
        grad_dist = torch.cat(grad_dist, dim=-1)  # (M, B, N, K)
        if layer.order == 0:  # a distance alone: no angular derivative
            grad_coord = grad_dist.unsqueeze(-2) * rhat  # (M, B, N, 3, K)
        else:
            grad_angular = torch.cat(grad_angular, dim=-1)  # (M, B, N, C, K)
            grad_rhat = grad_angular[..., 1:4, :]
            if layer.order == 2:
                a4, a5, a6, a7, a8 = grad_angular[..., 4:9, :].unbind(-2)
                third = 2.0 / 3.0 * (a4 + a7)
                grad_rhat = grad_rhat + torch.stack([
                    2 * x * a4 + y * a5 + z * a6 - third * x,
                    x * a5 + 2 * y * a7 + z * a8 - third * y,
                    x * a6 + y * a8 - third * z], dim=-2)
            radial = (grad_rhat * rhat).sum(-2, keepdim=True)
            grad_coord = grad_dist.unsqueeze(-2) * rhat + (grad_rhat - radial * rhat) / dist.unsqueeze(-2)
        # the prior: half of each listed pair's energy to its bead, within the cutoff
        bead_tapers = net.repulsion.taper.index_select(0, net.species - 1)  # (N, species)
        taper = torch.cat([bead_tapers[:, f:f + 1].expand(-1, hi - lo) for f, (lo, hi) in enumerate(bounds)], dim=1)
        half = 0.5 * net.repulsion.pair_energy(dist, taper) * (dist < net.cutoff_A).to(dist.dtype)
        prior_bead = half.sum(-1)
        grad_coord = grad_coord + (-net.repulsion.alpha * half).unsqueeze(-2) * rhat
        # F_i = -sum_k g_ik + sum over i's listings from its neighbours (mirror slots) of their g
        # read one Cartesian plane at a time: each stays slots-last (ghost slots read the zero past the end)
        planes = []
        for axis in range(3):
            plane = grad_coord[..., axis, :].reshape(m, n_frames * n_beads * capacity)
            plane = torch.cat([plane, torch.zeros_like(plane[:, :1])], dim=1)
            planes.append(plane.index_select(1, mirror.reshape(-1)).reshape(m, n_frames, n_beads, capacity))
        forces = (torch.stack(planes, dim=-2) - grad_coord).sum(-1)  # (M, B, N, 3)
        return bead.sum(-1), prior_bead.sum(-1), bead.mean(0) + prior_bead, forces


def scalar_kernels_apply(stacked: StackedMembers) -> bool:
    """``ScalarKernelForces`` computes what ``AnalyticForces`` does for a scalar network (tensor
    order 0, the study's ``Hipnn``)."""
    return analytic_forces_apply(stacked) and stacked.blocks[0][0].base.order == 0


class PairEnvironment(torch.autograd.Function):
    """kdcg.models.scalar_pair_kernels.environment as a function of the sensitivities' centres
    and widths mu, sigma (M, S) A: env (M, R, G, S) and slope (M, R, K, S) differentiable, the
    geometry (dist, unit) not. The positions are data, not differentiated."""

    @staticmethod
    def forward(ctx, mu, sigma, positions, neighbour, offset, slot_group, hard_max_A, reach_A, n_groups):
        from kdcg.models import scalar_pair_kernels as kernels

        mu_np, sigma_np = mu.detach().numpy(), sigma.detach().numpy()
        env, slope, dist, unit = kernels.environment(positions, neighbour, offset, slot_group, mu_np, sigma_np,
                                                     hard_max_A, reach_A, n_groups)
        ctx.kernel_inputs = (dist, slot_group, mu_np, sigma_np, hard_max_A)
        dist_t, unit_t = torch.from_numpy(dist), torch.from_numpy(unit)
        ctx.mark_non_differentiable(dist_t, unit_t)
        return torch.from_numpy(env), torch.from_numpy(slope), dist_t, unit_t

    @staticmethod
    def backward(ctx, d_env, d_slope, _dist, _unit):
        from kdcg.models import scalar_pair_kernels as kernels

        dist, slot_group, mu, sigma, hard_max_A = ctx.kernel_inputs
        d_mu, d_sigma = kernels.environment_backward(d_env.contiguous().numpy(), d_slope.contiguous().numpy(), dist,
                                                     slot_group, mu, sigma, hard_max_A)
        return (torch.from_numpy(d_mu.astype(np.float32)), torch.from_numpy(d_sigma.astype(np.float32)),
                None, None, None, None, None, None, None)


class PairForces(torch.autograd.Function):
    """kdcg.models.scalar_pair_kernels.forces as a function of the per-bead gradient grad_env
    (M, R, S, G) and the slots' slopes (M, R, K, S): each member's forces (M, R, 3)
    differentiable; the prior's bead energies (R,) not (the prior has no trained weights)."""

    @staticmethod
    def forward(ctx, grad_env, slope, dist, unit, mirror, slot_group, species, prior):
        from kdcg.models import scalar_pair_kernels as kernels

        grad_env_np, slope_np = grad_env.detach().contiguous().numpy(), slope.detach().numpy()
        forces, prior_bead = kernels.forces(grad_env_np, slope_np, dist.numpy(), unit.numpy(), mirror, slot_group,
                                            species, *prior)
        ctx.kernel_inputs = (grad_env_np, slope_np, dist.numpy(), unit.numpy(), mirror, slot_group, prior[3], prior[4])
        prior_bead = torch.from_numpy(prior_bead)
        ctx.mark_non_differentiable(prior_bead)
        return torch.from_numpy(forces), prior_bead

    @staticmethod
    def backward(ctx, d_forces, _prior_bead):
        from kdcg.models import scalar_pair_kernels as kernels

        d_grad_env, d_slope = kernels.forces_backward(d_forces.contiguous().numpy(), *ctx.kernel_inputs)
        return torch.from_numpy(d_grad_env), torch.from_numpy(d_slope), None, None, None, None, None, None


class ScalarKernelForces(torch.nn.Module):
    """``AnalyticForces`` of a scalar network on a CPU with its pair stage in hand-written
    kernels (kdcg.models.scalar_pair_kernels, numba): the same inputs and outputs, the per-bead
    layers (``bead_layers``) in PyTorch between the two kernels. Differentiable with respect to
    the weights (``PairEnvironment``, ``PairForces`` and autograd through the per-bead layers),
    so that a force loss trains through it (kdcg.training.kernel_graph); not with respect to the
    positions, and not for torch.compile. ``compile`` compiles the per-bead layers (MD, no
    gradients)."""

    def __init__(self, network: DenseNetwork, compile: bool = True):
        super().__init__()
        if not scalar_kernels_apply(network.stacked):
            raise TypeError("the scalar kernels need one interaction block of tensor order 0 and softplus activations")
        self.network = network
        # the per-bead layers are some 30 small operations: compiled, their launches are one call
        self.bead_layers = torch.compile(bead_layers, dynamic=False) if compile else bead_layers
        self._prior = self.prior_constants(network)

    @staticmethod
    def prior_constants(network: DenseNetwork) -> tuple:
        """The kernels' constants of the prior and the cut-offs, as numpy once rather than at every call."""
        repulsion = network.repulsion
        hard_max_A = network.stacked.blocks[0][0].base.hard_max_dist_A
        return (repulsion.taper.detach().numpy().astype(np.float32),
                np.float32(repulsion.force_at_taper / repulsion.alpha), np.float32(repulsion.alpha),
                np.float32(network.cutoff_A), np.float32(hard_max_A))

    def forward(self, positions_A, neighbour, offset_A, mirror, blocks: tuple):
        import numba

        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))  # torch's count
        net = self.network
        layer = net.stacked.blocks[0][0].base
        n_frames, n_beads, capacity = neighbour.shape
        n_species = net.onehot.shape[1]
        if len(blocks) != n_species:
            raise ValueError(f"the table has {len(blocks)} species blocks, the model {n_species} species")
        rows = n_frames * n_beads
        m = layer.mu.shape[0]
        slot_group = np.repeat(np.arange(n_species, dtype=np.int64), blocks)
        env, slope, dist, unit = PairEnvironment.apply(
            layer.mu.reshape(m, -1), layer.sigma.reshape(m, -1), positions_A.detach().reshape(rows, 3).numpy(),
            neighbour.reshape(rows, capacity).numpy(), offset_A.reshape(rows, capacity, 3).numpy(), slot_group,
            layer.hard_max_dist_A, max(layer.hard_max_dist_A, net.cutoff_A), n_species)
        env = env.transpose(-1, -2).reshape(m, rows, 1, -1)  # (M, B*N, C = 1, S*F_in)
        bead_layers_now = self.bead_layers if not torch.is_grad_enabled() else bead_layers  # compiled: no gradients
        bead, grad_env = bead_layers_now(net, env, n_frames, n_beads)
        member_forces, prior_bead = PairForces.apply(
            grad_env.reshape(m, rows, layer.n_dist, n_species), slope, dist, unit,
            mirror.reshape(rows, capacity).numpy(), slot_group, (net.species - 1).repeat(n_frames).numpy(), self._prior)
        prior_bead = prior_bead.reshape(n_frames, n_beads)
        forces = member_forces.reshape(m, n_frames, n_beads, 3)
        return bead.sum(-1), prior_bead.sum(-1), bead.mean(0) + prior_bead, forces


def trainable_weights(stacked: StackedMembers) -> list[torch.Tensor]:
    """The floating-point tensors of a stack (weights, biases, sensitivity centres and widths,
    tensor scales: copies of the members' trained parameters, kept as buffers) set to require
    gradients, so that a force loss through ``AnalyticForces`` trains them: its forces are
    written out, so the loss's gradient needs one backward pass, not the second derivative of an
    autograd force (benchmarks/engine.py times such a training step)."""
    weights = [b for b in stacked.buffers() if b.is_floating_point()]
    for w in weights:
        w.requires_grad_(True)
    return weights

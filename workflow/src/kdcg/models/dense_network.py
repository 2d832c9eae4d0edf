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
    weights = layer.int_weights[members]
    nb = n_frames * n_beads
    out = torch.bmm(env[:, :, 0].contiguous(), weights)
    if layer.order >= 1:
        vec = torch.bmm(env[:, :, 1:4].reshape(n_members, nb * 3, -1), weights)
        vec = torch.sqrt(torch.square(vec.reshape(n_members, nb, 3, layer.nf_out)).sum(dim=2) + layer.cusp_reg)
        out = out + vec * layer.vecscales[members]
    if layer.order == 2:
        quad_env = torch.bmm(env[:, :, 4:9].reshape(n_members, nb * 5, -1), weights).reshape(n_members, nb, 5, layer.nf_out)
        norm = 2 * (torch.square(quad_env).sum(dim=2) + quad_env[:, :, 0, :] * quad_env[:, :, 3, :])
        out = out + torch.sqrt(norm + layer.cusp_reg) * layer.quadscales[members]
    return out + layer.selfint(features, members)


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

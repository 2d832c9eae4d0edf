"""Hand-written CPU kernels (numba) for the pair stage of a scalar HIP-NN (tensor order 0, the
study's network) over a neighbour table (kdcg.models.neighbour_table, rows grouped by neighbour
species): the environment sums and, given the per-bead gradient, each member's forces.

Why not Inductor here: its loops over the (sensitivities x slots) arrays evaluated each slot's
cosine cut-off once per sensitivity and formed every array in memory, and it cannot skip the
table's ghost slots (about 60 % of the study table's). One pass per row does the slot's geometry
once, skips slots beyond the cut-off, and sums in registers; rows are independent, so the result
does not depend on the number of threads. The arithmetic is
kdcg.models.dense_network.AnalyticForces', in another order of float32 sums; the per-bead layers
stay in PyTorch (``kdcg.models.dense_network.ScalarKernelForces``).

Shapes: M members, R = frames x beads rows, K slots per row, S sensitivities, G neighbour
species (blocks of the row). Distances in A, energies in kcal/mol.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from kdcg.models.sensitivity import LOG_SMALLEST_SENSITIVITY

# reassociation and contraction let LLVM vectorise the sums over sensitivities; no NaN or
# infinity assumptions (a bad frame must still show as one)
_FASTMATH = {"contract", "reassoc", "arcp", "afn"}


@numba.njit(inline="always", fastmath=_FASTMATH, cache=True)
def _cosine_cut(r, quarter):
    """hippynn's cosine cut-off cos^2(pi r / 2 r_max) and its slope d/dr; quarter = pi / 2 r_max."""
    angle = quarter * r
    c = np.float32(math.cos(angle))
    return c * c, -quarter * np.float32(math.sin(2.0 * angle))


@numba.njit(parallel=True, fastmath=_FASTMATH, cache=True)
def environment(positions, neighbour, offset, slot_group, mu, sigma, hard_max_A, reach_A, n_groups):
    """positions (R, 3) float32 A, neighbour (R, K) flat row index of each slot's bead, offset
    (R, K, 3) image shift A, slot_group (K,) the neighbour species block of each slot, mu and
    sigma (M, S) of the inverse Gaussians, hard_max_A the cut-off, reach_A the longest cut-off of
    the network and the prior (a slot farther away is skipped: distance inf, no direction).

    Returns env (M, R, G, S): each bead's sum over the neighbours of one species of
    sensitivity x cos^2 cut-off; slope (M, R, K, S): d(sensitivity x cut-off)/dr of each slot;
    dist (R, K) A and unit (R, K, 3) the pair's direction R_i - R_j + offset over its length
    (unset where the distance is inf)."""
    n_members, n_sense = mu.shape
    n_rows, n_slots = neighbour.shape
    env = np.zeros((n_members, n_rows, n_groups, n_sense), dtype=np.float32)  # sensitivities innermost: vector lanes
    slope = np.empty((n_members, n_rows, n_slots, n_sense), dtype=np.float32)  # set within reach_A only
    dist = np.empty((n_rows, n_slots), dtype=np.float32)
    unit = np.empty((n_rows, n_slots, 3), dtype=np.float32)
    inverse_mu = (np.float32(1.0) / mu).astype(np.float32)
    width = (sigma * sigma).astype(np.float32)  # hippynn divides by sigma^-2
    quarter = np.float32(math.pi / 2.0) / np.float32(hard_max_A)
    floor = np.float32(LOG_SMALLEST_SENSITIVITY)
    reach2 = np.float32(reach_A) * np.float32(reach_A)
    for i in numba.prange(n_rows):
        for k in range(n_slots):
            j = neighbour[i, k]
            dx = positions[i, 0] - positions[j, 0] + offset[i, k, 0]
            dy = positions[i, 1] - positions[j, 1] + offset[i, k, 1]
            dz = positions[i, 2] - positions[j, 2] + offset[i, k, 2]
            r2 = dx * dx + dy * dy + dz * dz
            if r2 > reach2:  # a ghost slot or a pair past every cut-off: nothing to add, nothing to pull
                dist[i, k] = np.inf
                continue
            r = np.float32(math.sqrt(r2))
            inverse_r = np.float32(1.0) / r
            dist[i, k] = r
            unit[i, k, 0] = dx * inverse_r
            unit[i, k, 1] = dy * inverse_r
            unit[i, k, 2] = dz * inverse_r
            if r > hard_max_A:  # within the prior's reach only
                slope[:, i, k, :] = 0.0
                continue
            cut, cut_slope = _cosine_cut(r, quarter)
            g = slot_group[k]
            for m in range(n_members):
                for s in range(n_sense):
                    gap = inverse_r - inverse_mu[m, s]
                    exponent = np.float32(-0.5) * (gap * gap * width[m, s])
                    base = np.float32(math.exp(exponent)) if exponent >= floor else np.float32(0.0)
                    env[m, i, g, s] += base * cut
                    slope[m, i, k, s] = base * (cut * gap * width[m, s] * inverse_r * inverse_r + cut_slope)
    return env, slope, dist, unit


@numba.njit(parallel=True, fastmath=_FASTMATH, cache=True)
def forces(grad_env, slope, dist, unit, mirror, slot_group, species, taper_A, prior_scale, alpha, prior_cutoff_A,
           hard_max_A):
    """Each member's forces from the per-bead gradient grad_env (M, R, S, G) = dE/d env, with
    the repulsive prior U(r) = prior_scale exp(-alpha (r - taper[a, b])) for pairs closer than
    prior_cutoff_A (each pair listed from both beads, half its energy to each); slopes are zero
    past the network's cut-off hard_max_A.

    species (R,) 0-based of each row's bead, taper_A (species, species). Returns forces
    (M, R, 3) kcal/mol/A, each with the prior, and the prior's bead energies (R,) kcal/mol."""
    n_members, n_rows, n_sense, _ = grad_env.shape
    n_slots = dist.shape[1]
    along = np.zeros((n_members, n_rows, n_slots), dtype=np.float32)  # dE/dr of each listing
    prior_bead = np.zeros(n_rows, dtype=np.float32)
    for i in numba.prange(n_rows):
        a = species[i]
        for k in range(n_slots):
            r = dist[i, k]
            if r >= prior_cutoff_A and r > hard_max_A:  # a ghost slot or a pair past both cut-offs
                continue
            prior_slope = np.float32(0.0)
            if r < prior_cutoff_A:
                half = np.float32(0.5) * prior_scale * np.float32(math.exp(-alpha * (r - taper_A[a, slot_group[k]])))
                prior_bead[i] += half
                prior_slope = -alpha * half
            g = slot_group[k]
            for m in range(n_members):
                total = prior_slope
                for s in range(n_sense):
                    total += grad_env[m, i, s, g] * slope[m, i, k, s]
                along[m, i, k] = total
    # a pair listed as (i, k) and, at its mirror slot, from its other bead: each listing's dE/dr
    # pulls along the same line, F_i = -sum_k (dE/dr_ik + dE/dr_mirror) (R_i - R_k) / r
    n_listed = n_rows * n_slots
    out = np.zeros((n_members, n_rows, 3), dtype=np.float32)
    for i in numba.prange(n_rows):
        for k in range(n_slots):
            if dist[i, k] >= prior_cutoff_A and dist[i, k] > hard_max_A:
                continue
            back = mirror[i, k]
            row, slot = back // n_slots, back % n_slots
            for m in range(n_members):
                both = along[m, i, k] + (along[m, row, slot] if back < n_listed else np.float32(0.0))
                out[m, i, 0] -= both * unit[i, k, 0]
                out[m, i, 1] -= both * unit[i, k, 1]
                out[m, i, 2] -= both * unit[i, k, 2]
    return out, prior_bead


# The adjoints below make the two kernels trainable (kdcg.models.dense_network's
# ``PairEnvironment`` and ``PairForces`` autograd functions): a force loss needs the gradient of
# the forces with respect to the weights, which the written-out forces give with one backward
# pass of their own instead of autograd's second derivative.


@numba.njit(parallel=True, fastmath=_FASTMATH, cache=True)
def forces_backward(grad_forces, grad_env, slope, dist, unit, mirror, slot_group, prior_cutoff_A, hard_max_A):
    """The adjoint of ``forces`` for its differentiable inputs: given dL/dforces (M, R, 3),
    returns dL/d grad_env (M, R, S, G) and dL/d slope (M, R, K, S) (zero at slots past the
    network's cut-off, where the slopes are constants). The prior's part has no weights.

    A listing's dE/dr pulls on its own bead along its unit vector and on the bead of its mirror
    slot along the mirror's, so its adjoint is h = -(dL/dF_i . u_ik) - (dL/dF_j . u_mirror)."""
    n_members, n_rows, n_sense, n_groups = grad_env.shape
    n_slots = dist.shape[1]
    n_listed = n_rows * n_slots
    d_grad_env = np.zeros((n_members, n_rows, n_sense, n_groups), dtype=np.float32)
    d_slope = np.zeros((n_members, n_rows, n_slots, n_sense), dtype=np.float32)
    for i in numba.prange(n_rows):
        for k in range(n_slots):
            if dist[i, k] > hard_max_A:  # ghost, or past the network's cut-off: no weight in it
                continue
            back = mirror[i, k]
            row, slot = back // n_slots, back % n_slots
            g = slot_group[k]
            for m in range(n_members):
                h = -(grad_forces[m, i, 0] * unit[i, k, 0] + grad_forces[m, i, 1] * unit[i, k, 1]
                      + grad_forces[m, i, 2] * unit[i, k, 2])
                if back < n_listed:
                    h -= (grad_forces[m, row, 0] * unit[row, slot, 0] + grad_forces[m, row, 1] * unit[row, slot, 1]
                          + grad_forces[m, row, 2] * unit[row, slot, 2])
                for s in range(n_sense):
                    d_grad_env[m, i, s, g] += h * slope[m, i, k, s]
                    d_slope[m, i, k, s] = h * grad_env[m, i, s, g]
    return d_grad_env, d_slope


@numba.njit(parallel=True, fastmath=_FASTMATH, cache=True)
def environment_backward(d_env, d_slope, dist, slot_group, mu, sigma, hard_max_A):
    """The adjoint of ``environment`` for the sensitivities' centres and widths: given dL/d env
    (M, R, G, S) and dL/d slope (M, R, K, S), returns dL/d mu and dL/d sigma (M, S), summed in
    float64 (one partial sum per row, so that rows run in parallel without races)."""
    n_members, n_sense = mu.shape
    n_rows, n_slots = dist.shape
    partial_mu = np.zeros((n_rows, n_members, n_sense), dtype=np.float64)
    partial_sigma = np.zeros((n_rows, n_members, n_sense), dtype=np.float64)
    inverse_mu = (np.float32(1.0) / mu).astype(np.float32)
    width = (sigma * sigma).astype(np.float32)
    quarter = np.float32(math.pi / 2.0) / np.float32(hard_max_A)
    floor = np.float32(LOG_SMALLEST_SENSITIVITY)
    for i in numba.prange(n_rows):
        for k in range(n_slots):
            r = dist[i, k]
            if r > hard_max_A:
                continue
            inverse_r = np.float32(1.0) / r
            inverse_r2 = inverse_r * inverse_r
            cut, cut_slope = _cosine_cut(r, quarter)
            g = slot_group[k]
            for m in range(n_members):
                for s in range(n_sense):
                    gap = inverse_r - inverse_mu[m, s]
                    w = width[m, s]
                    exponent = np.float32(-0.5) * (gap * gap * w)
                    if exponent < floor:  # the sensitivity is a constant 0 there
                        continue
                    base = np.float32(math.exp(exponent))
                    along = cut * gap * w * inverse_r2 + cut_slope  # slope = base x along
                    ge, gs = d_env[m, i, g, s], d_slope[m, i, k, s]
                    # d/d gap and d/d w of env's term base x cut and of the slope
                    d_gap = -gap * w * base * (ge * cut + gs * along) + gs * base * cut * w * inverse_r2
                    d_w = np.float32(-0.5) * gap * gap * base * (ge * cut + gs * along) + gs * base * cut * gap * inverse_r2
                    partial_mu[i, m, s] += d_gap * inverse_mu[m, s] * inverse_mu[m, s]  # d gap / d mu = 1 / mu^2
                    partial_sigma[i, m, s] += d_w * np.float32(2.0) * sigma[m, s]  # d w / d sigma = 2 sigma
    return partial_mu.sum(axis=0), partial_sigma.sum(axis=0)

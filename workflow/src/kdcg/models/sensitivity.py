"""HIP-NN's inverse sensitivities without denormal numbers: the same values, to the last bit of
the forces, faster on a CPU.

hippynn's ``InverseSensitivityModule`` is a Gaussian in 1/r, exp(-(1/r - 1/mu)^2 sigma^2 / 2),
times the cosine cutoff. With the paper's widths (sigma = 2 x 20 sensitivities x 3 A = 120 A)
most pairs within a 10 A cutoff are far out in the tails of most Gaussians: the exponent goes
down to about -400, where float32 results are denormal (below 1.2e-38) or zero. On an x86 CPU
PyTorch's exp of such arguments takes a slow path, and every product formed with a denormal
(the vector and quadrupole sensitivities, the backward pass) is slow as well
(benchmarks/md.py prints the paper network's evaluation with this module and with hippynn's).

Here a sensitivity whose exponent is below ``LOG_SMALLEST_SENSITIVITY`` is exactly zero; the
others are computed as hippynn computes them. e^-70 (4e-31) is 21 decades below the 1e-10
under which hippynn's own CPU envsum kernel already skips a sensitivity, and 7 decades above
float32's smallest normal number, so the sensitivities' products with unit-vector and
quadrupole components stay normal. Every sum such a value entered also holds terms more than 20
decades larger, so energies and forces are hippynn's to the last bit (tests/unit/test_sensitivity.py
checks frames of every network kind at the paper's sizes).

The cut is one autograd function in place of ``torch.exp`` (its derivative is its value, as
exp's): the autograd graph keeps hippynn's shape, so gradients add up in hippynn's order and
the parameters' gradients of a force loss are hippynn's to the bit as well (with ``torch.where``
and ``clamp`` in the graph instead, mu's and sigma's moved by a rounding step), and a training
gives the weights it gave before. Models built by kdcg (kdcg.models.model) use it, and saved models
get it when loaded (kdcg.models.model_io.load_model). On a GPU denormals cost nothing extra; the same
code runs there.
"""

from __future__ import annotations

import torch

from . import hippynn_import  # noqa: F401  (before the first hippynn import)
from hippynn import settings
from hippynn.layers.hiplayers.sensitivity import InverseSensitivityModule, warn_if_under

LOG_SMALLEST_SENSITIVITY = -70.0  # natural log; below it a sensitivity is 0 (see the module doc)


class TailFreeExp(torch.autograd.Function):
    """exp(x), exactly 0 where x < ``LOG_SMALLEST_SENSITIVITY``; derivative: its own value."""

    @staticmethod
    def forward(ctx, x):
        # clamped first so that exp never meets its slow range
        y = torch.where(x >= LOG_SMALLEST_SENSITIVITY, torch.exp(x.clamp(min=LOG_SMALLEST_SENSITIVITY)), 0.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y  # differentiable again: training differentiates the forces


def inverse_gaussians(dist_A: torch.Tensor, mu_A: torch.Tensor, sigma_A: torch.Tensor) -> torch.Tensor:
    """exp(-(1/r - 1/mu)^2 sigma^2 / 2) with ``dist_A`` broadcast against ``mu_A`` and
    ``sigma_A`` (A), in hippynn's order of operations, zero where the exponent is below
    ``LOG_SMALLEST_SENSITIVITY``."""
    return TailFreeExp.apply(-0.5 * ((dist_A ** -1 - mu_A ** -1) ** 2 / (sigma_A ** -2)))


class InverseSensitivity(InverseSensitivityModule):
    """hippynn's inverse sensitivity (same parameters, state and low-distance warning) through
    ``inverse_gaussians``."""

    def forward(self, distflat, warn_low_distances=None):
        if settings.WARN_LOW_DISTANCES if warn_low_distances is None else warn_low_distances:
            with torch.no_grad():
                mu, argmin = self.mu.min(dim=1)
                sigma = self.sigma[:, argmin]
                warn_if_under(distflat, (mu ** -1 - sigma ** -1) ** -1)  # the shortest Gaussian's inner edge
        return inverse_gaussians(distflat.unsqueeze(1), self.mu, self.sigma) * self.cutoff(distflat).unsqueeze(1)


def use_inverse_sensitivity(module: torch.nn.Module, hippynns: bool = False) -> int:
    """Turn every hippynn ``InverseSensitivityModule`` under ``module`` (a built or loaded
    graph) into an ``InverseSensitivity``: same state, only the forward differs; with
    ``hippynns``, the other way round (side-by-side checks). Returns how many were changed."""
    old, new = (InverseSensitivity, InverseSensitivityModule) if hippynns else (InverseSensitivityModule, InverseSensitivity)
    n = 0
    for sub in module.modules():
        if type(sub) is old:
            sub.__class__ = new
            n += 1
    return n

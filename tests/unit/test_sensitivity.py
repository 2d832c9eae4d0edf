"""kdcg.models.sensitivity (hippynn's inverse sensitivities, the denormal tail zeroed) and the pair
reordering by index_select (kdcg.models.hippynn_import) give hippynn's numbers to the last bit."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hippynn.graphs import GraphModule
from hippynn.layers.hiplayers.sensitivity import InverseSensitivityModule

from kdcg.models import hippynn_import
from kdcg.models.model import NETWORKS, build_model
from kdcg.models.sensitivity import LOG_SMALLEST_SENSITIVITY, InverseSensitivity, use_inverse_sensitivity

PAPER_MODEL = {"n_features": 32, "n_sensitivities": 20, "n_interaction_layers": 1, "n_atom_layers": 3,
               "dist_soft_min_A": 3.0, "dist_soft_max_A": 8.5, "dist_hard_max_A": 10.0}  # Table 1
PRIOR = {"taper_A": [[3.0] * 3] * 3, "strength_kcal_mol_A": 5.0, "dr_A": 0.15, "fraction_at_taper": 0.05}


@pytest.fixture(autouse=True)
def one_thread():
    """One thread, as kdcg's jobs run by default: on two, hippynn's numba kernels and torch's
    CPU reductions may add up in another order from one call to the next (a rounding step),
    whichever sensitivity is used."""
    import numba

    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    numba.set_num_threads(numba_threads)


def liquid_frame(n_side: int = 5, edge_A: float = 22.4, seed: int = 0):
    """A jittered simple-cubic frame at reline's bead density (1,000 beads in a 44.84 A box)."""
    rng = np.random.default_rng(seed)
    spacing = edge_A / n_side
    grid = np.stack(np.meshgrid(*[np.arange(n_side) * spacing] * 3, indexing="ij"), -1).reshape(1, -1, 3)
    Z = torch.as_tensor(rng.integers(1, 4, size=grid.shape[:2]))
    R = torch.as_tensor(grid + rng.normal(scale=0.5, size=grid.shape), dtype=torch.float32)
    return Z, R, torch.eye(3)[None] * edge_A


def with_hippynns_sensitivity(graph: torch.nn.Module) -> torch.nn.Module:
    other = copy.deepcopy(graph)
    use_inverse_sensitivity(other, hippynns=True)
    return other


def test_a_sensitivity_is_hippynns_above_the_smallest_kept_and_zero_below():
    torch.manual_seed(0)
    theirs = InverseSensitivityModule(20, 3.0, 8.5, 10.0)
    theirs.sigma.data.mul_(torch.linspace(0.5, 1.5, 20))  # widths as training leaves them: unequal
    ours = copy.deepcopy(theirs)
    ours.__class__ = InverseSensitivity
    dist = torch.linspace(2.5, 10.0, 4001)
    want, got = theirs(dist, warn_low_distances=False), ours(dist, warn_low_distances=False)
    exponent = -0.5 * (dist[:, None] ** -1 - theirs.mu ** -1) ** 2 / theirs.sigma ** -2
    kept = exponent >= LOG_SMALLEST_SENSITIVITY
    assert kept.float().mean() > 0.2 and (~kept).float().mean() > 0.2  # both regimes are exercised
    assert torch.equal(got[kept], want[kept])
    assert torch.all(got[~kept] == 0)
    assert want[~kept].max() < 1e-30  # what was dropped
    assert ((want > 0) & (want < torch.finfo(torch.float32).tiny)).any()  # and hippynn's denormals with it


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_energy_forces_and_parameter_gradients_are_hippynns_to_the_bit(network):
    """The paper's sizes, float32 as trained and run, two frames: kdcg's sensitivity and pair
    reordering against hippynn's own; also every parameter's gradient of a force loss, as
    training takes it."""
    torch.manual_seed(0)
    m = build_model({"network": network, **PAPER_MODEL}, 3, PRIOR)
    ours = GraphModule([m.species, m.positions, m.cells], [m.forces, m.energy])
    assert [type(x) for x in ours.modules() if isinstance(x, InverseSensitivityModule)] == [InverseSensitivity]
    theirs = with_hippynns_sensitivity(ours)
    Z, R, C = two_frames()
    results = []
    for graph, index_select in ((theirs, False), (ours, True)):
        graph.zero_grad()
        forces, energy = run(graph, Z, R, C, index_select, detach=False)
        (forces.square().sum() + energy.sum()).backward()
        grads = {name: p.grad.clone() for name, p in graph.named_parameters() if p.grad is not None}
        results.append((forces.detach(), energy.detach(), grads))
    (f_want, e_want, g_want), (f_got, e_got, g_got) = results
    assert f_want.abs().max() > 0.1
    assert torch.equal(f_got, f_want) and torch.equal(e_got, e_want)
    assert g_got.keys() == g_want.keys() and len(g_got) > 10
    for name in g_want:
        assert torch.equal(g_got[name], g_want[name]), name


def test_the_tail_free_exponential_has_exps_first_and_second_derivatives():
    from kdcg.models.sensitivity import TailFreeExp

    x = torch.linspace(-69.0, 2.0, 40, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(TailFreeExp.apply, (x,))
    assert torch.autograd.gradgradcheck(TailFreeExp.apply, (x,))
    below = torch.tensor([-70.5, -100.0, -1e4], dtype=torch.float64, requires_grad=True)
    y = TailFreeExp.apply(below)
    (grad,) = torch.autograd.grad(y.sum(), below)
    assert torch.all(y == 0) and torch.all(grad == 0)


def two_frames():
    (Z, R, C), (Z2, R2, C2) = liquid_frame(), liquid_frame(seed=1)
    return torch.cat([Z, Z2]), torch.cat([R, R2]), torch.cat([C, C2])


def run(graph, Z, R, C, index_select: bool, detach: bool = True):
    hippynn_import.reorder_pairs_by_index_select(index_select)
    try:
        outputs = graph(Z, R, C)
        return tuple(x.detach() for x in outputs) if detach else outputs
    finally:
        hippynn_import.reorder_pairs_by_index_select(True)


def test_a_model_saved_with_hippynns_sensitivity_loads_with_kdcgs_and_gives_its_forces(tmp_path):
    from kdcg.models.model_forces import ModelForces
    from kdcg.models.model_io import save_model

    torch.manual_seed(0)
    prior = {**PRIOR, "species_names": ["A", "B", "C"]}
    cfg = {"network": "HipnnQuad", **PAPER_MODEL}
    m = build_model(cfg, 3, prior)
    graph = GraphModule([m.species, m.positions, m.cells], [m.forces, m.bead_energies, m.energy])
    before = with_hippynns_sensitivity(graph)  # as kdcg saved models before kdcg.models.sensitivity
    save_model(before, prior, cfg, tmp_path / "model.pt")
    loaded = ModelForces(tmp_path / "model.pt")
    assert [type(x) for x in loaded.graph.modules() if isinstance(x, InverseSensitivityModule)] == [InverseSensitivity]
    assert use_inverse_sensitivity(loaded.graph) == 0  # nothing left to change
    Z, R, C = liquid_frame()
    got = loaded(Z[0].numpy(), R[0].numpy(), C[0].numpy())
    forces, _, energy = run(before, Z, R, C, index_select=False)
    assert np.array_equal(got.forces_kcal_mol_A, forces[0].numpy().astype(np.float64))
    assert got.energy_kcal_mol == energy.reshape(-1)[0].item()

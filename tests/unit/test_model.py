"""The model's network is a config key: each hippynn network gives forces = -dE/dR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hippynn.graphs import GraphModule

from kdcg.models.model import NETWORKS, build_model

PRIOR = {"taper_A": [[3.0, 2.8], [2.8, 3.2]], "strength_kcal_mol_A": 5.0, "dr_A": 0.15, "fraction_at_taper": 0.05}


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_each_network_gives_forces_minus_the_energy_gradient(network):
    cfg = {"network": network, "n_features": 6, "n_sensitivities": 5, "n_interaction_layers": 1, "n_atom_layers": 1,
           "dist_soft_min_A": 2.0, "dist_soft_max_A": 4.5, "dist_hard_max_A": 5.0}
    torch.manual_seed(0)
    m = build_model(cfg, 2, PRIOR)
    assert type(m.network) is NETWORKS[network]
    graph = GraphModule([m.species, m.positions, m.cells], [m.forces, m.energy]).double()
    rng = np.random.default_rng(0)
    edge = 12.0
    grid = np.stack(np.meshgrid(*[np.arange(3) * 4.0 + 2.0] * 3, indexing="ij"), -1).reshape(1, 27, 3)
    Z = torch.as_tensor(rng.integers(1, 3, size=(1, 27)))
    R = torch.as_tensor(grid + rng.normal(scale=0.3, size=grid.shape))  # near neighbours 3-5 A apart
    C = torch.as_tensor(np.eye(3)[None] * edge)
    forces, _ = graph(Z, R, C)
    h = 1e-5
    for bead, axis in ((0, 0), (7, 2), (13, 1)):
        plus, minus = R.clone(), R.clone()
        plus[0, bead, axis] += h
        minus[0, bead, axis] -= h
        numeric = -(graph(Z, plus, C)[1] - graph(Z, minus, C)[1]).item() / (2 * h)
        assert forces[0, bead, axis].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("kernels", ["", "False"])
def test_hippynn_imported_through_kdcg_uses_its_own_kernels_and_leaves_torch_compile_alone(kernels):
    """kdcg.models.hippynn_import skips hippynn's torch.compile wrapper only where that kernel is not used."""
    import json
    import subprocess
    import sys

    from conftest import REPO, venv_env

    probe = ("import sys, json, torch; compile_before = torch.compile; "
             "import kdcg.models.model; import hippynn.custom_kernels as ck; "
             "print(json.dumps([ck.CUSTOM_KERNELS_ACTIVE, torch.compile is compile_before, 'torch._dynamo' in sys.modules]))")
    env = venv_env()
    env.pop("HIPPYNN_USE_CUSTOM_KERNELS", None)
    if kernels:
        env["HIPPYNN_USE_CUSTOM_KERNELS"] = kernels
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    active, compile_restored, dynamo_imported = json.loads(out.stdout.strip().splitlines()[-1])
    if kernels:  # hippynn's own torch kernels, compiled: hippynn imported as it is
        assert active == "pytorch" and dynamo_imported
    else:
        assert compile_restored and active in ("numba", "triton", "cupy")  # not the wrapped "pytorch" one
        if active == "numba":  # the CPU route: no Dynamo at all (triton's import brings it in on a GPU)
            assert not dynamo_imported


def test_numba_and_plain_torch_kernels_give_the_same_energies_and_forces():
    """The fast path (numba, kdcg's on a CPU) against hippynn's plain torch kernels, float64."""
    import hippynn

    cfg = {"network": "HipnnQuad", "n_features": 8, "n_sensitivities": 6, "n_interaction_layers": 1, "n_atom_layers": 2,
           "dist_soft_min_A": 2.0, "dist_soft_max_A": 4.5, "dist_hard_max_A": 5.0}
    torch.manual_seed(0)
    m = build_model(cfg, 2, PRIOR)
    graph = GraphModule([m.species, m.positions, m.cells], [m.forces, m.energy]).double()
    rng = np.random.default_rng(1)
    grid = np.stack(np.meshgrid(*[np.arange(3) * 4.0 + 2.0] * 3, indexing="ij"), -1).reshape(1, 27, 3)
    Z = torch.as_tensor(rng.integers(1, 3, size=(2, 27)))
    R = torch.as_tensor(np.concatenate([grid, grid]) + rng.normal(scale=0.3, size=(2, 27, 3)))
    C = torch.as_tensor(np.eye(3)[None].repeat(2, 0) * 12.0)
    before = hippynn.custom_kernels.CUSTOM_KERNELS_ACTIVE
    results = {}
    try:
        for kernels in ("numba", "pytorch"):
            hippynn.custom_kernels.set_custom_kernels(kernels)
            results[kernels] = [t.detach().numpy() for t in graph(Z, R, C)]
    finally:
        hippynn.custom_kernels.set_custom_kernels(before)
    assert np.abs(results["numba"][0]).max() > 0.1  # forces that are not trivially zero
    np.testing.assert_allclose(results["pytorch"][0], results["numba"][0], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(results["pytorch"][1], results["numba"][1], rtol=1e-10)


def test_every_hippynn_import_of_kdcg_comes_after_kdcg_hippynn_import():
    """Whichever kdcg module a job imports first, hippynn is imported through kdcg.models.hippynn_import:
    each hippynn import has one of it (or of a module importing it at its top) before it, in its
    own function or at the module's top level."""
    import ast

    from conftest import REPO

    package = REPO / "workflow" / "src" / "kdcg"
    guards = {"hippynn_import", "model", "pairs", "training"}  # these import it at their top level

    def is_hippynn(node):
        return (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] == "hippynn") or \
            (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "hippynn" for a in node.names))

    def is_guard(node):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            return (node.module in guards) or (node.module is None and any(a.name in guards for a in node.names))
        return False

    unguarded = []

    def visit(body, guard_lines, name):
        """Statements in order; a guard seen so far covers what follows it, nested scopes included."""
        for node in body:
            if is_guard(node):
                guard_lines = guard_lines + [node.lineno]
            if is_hippynn(node) and not guard_lines:
                unguarded.append(f"{name}:{node.lineno}")
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    visit(inner, guard_lines, name)

    for path in sorted(package.glob("*.py")):
        if path.name != "hippynn_import.py":
            visit(ast.parse(path.read_text()).body, [], path.name)
    assert not unguarded, f"hippynn imported before kdcg.models.hippynn_import: {unguarded}"


def random_members(cfg: dict, prior: dict, n: int) -> list:
    """n saved-model graphs of random weights (seeds 1..n), as kdcg.models.ensemble reads them."""
    members = []
    for seed in range(1, n + 1):
        torch.manual_seed(seed)
        m = build_model(cfg, len(prior["taper_A"]), prior)
        members.append(GraphModule([m.species, m.positions, m.cells], [m.forces, m.bead_energies, m.energy]))
    return members


@pytest.mark.parametrize("members_per_pass", [None, 2])
@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_stacked_ensemble_members_give_the_member_by_member_outputs(network, members_per_pass):
    """kdcg.models.stacked_members (weights stacked, one backward for every member's forces) against
    each member's own modules one after another: mean forces, bead and system energies and
    every member's forces, on a batch of two frames, two interaction blocks (float64); all 3
    members in one pass, or passes of 2 and 1."""
    from kdcg.models.model import ensemble_graph, member_output_name
    from kdcg.models.stacked_members import StackedMembers

    cfg = {"network": network, "n_features": 6, "n_sensitivities": 5, "n_interaction_layers": 2, "n_atom_layers": 2,
           "dist_soft_min_A": 2.0, "dist_soft_max_A": 4.5, "dist_hard_max_A": 5.0}
    members = random_members(cfg, PRIOR, 3)
    stacked = ensemble_graph(members, PRIOR, cfg, stacked=True).double()
    one_by_one = ensemble_graph(members, PRIOR, cfg, stacked=False).double()
    (stack,) = [m for m in stacked.modules() if isinstance(m, StackedMembers)]
    stack.members_per_pass = members_per_pass
    rng = np.random.default_rng(1)
    grid = np.stack(np.meshgrid(*[np.arange(3) * 4.0 + 2.0] * 3, indexing="ij"), -1).reshape(1, 27, 3)
    Z = torch.as_tensor(rng.integers(1, 3, size=(2, 27)))
    R = torch.as_tensor(grid + rng.normal(scale=0.4, size=(2, 27, 3)))
    C = torch.as_tensor(np.eye(3)[None].repeat(2, 0) * 12.0)
    names = [n.name for n in stacked.nodes_to_compute]
    assert names == [n.name for n in one_by_one.nodes_to_compute]
    assert names == ["forces", "bead_energies", "energy", *(member_output_name(k) for k in (1, 2, 3))]
    got, want = stacked(Z, R, C), one_by_one(Z, R, C)
    for name, a, b in zip(names, got, want):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-10, err_msg=name)
    # the members differ, so the test compares something
    assert (got[3] - got[4]).abs().max() > 1e-3


def test_stacked_members_go_in_cache_sized_passes_on_a_cpu_and_all_at_once_elsewhere():
    """On a CPU a pass holds as many members as keep its sensitivity and environment arrays
    (4 bytes x components x sensitivities x (pairs + beads x input features), summed over the
    interaction blocks) within CPU_BYTES_PER_PASS, in passes of equal size; elsewhere (a GPU)
    all members go in one pass."""
    from kdcg.models.model import graph_node
    from kdcg.models.stacked_members import CPU_BYTES_PER_PASS, StackedMembers

    def stack(network, n_features, n_sensitivities):
        cfg = {"network": network, "n_features": n_features, "n_sensitivities": n_sensitivities,
               "n_interaction_layers": 1, "n_atom_layers": 3, "dist_soft_min_A": 3.0, "dist_soft_max_A": 7.0,
               "dist_hard_max_A": 8.0}
        graphs = random_members(cfg, {**PRIOR, "taper_A": [[3.0] * 3] * 3}, 8)  # reline's 3 species
        return StackedMembers([graph_node(g, "hipnn_ts").torch_module for g in graphs],
                              [graph_node(g, "hipnn_energy").torch_module for g in graphs])

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    default, paper = stack("Hipnn", 16, 10), stack("HipnnQuad", 32, 20)
    n_beads = 1000
    # the default's network: 4 * 10 * (24,000 pairs + 1,000 beads x 3 species) bytes per member,
    # 7 fit in 8 MiB: 2 passes of 4
    assert default.automatic_members_per_pass(n_beads, 24000, cpu) == 4
    # the paper's: 4 * 9 components * 20 * (46,000 + 3,000) bytes, 35 MB: one member per pass
    assert paper.automatic_members_per_pass(n_beads, 46000, cpu) == 1
    assert default.automatic_members_per_pass(10, 100, cpu) == 8  # a small frame: one pass
    # 3 fit: 3 passes of 3 (the last one of 2), not 3 + 3 + 2 of 4-member passes
    n_pairs = int(CPU_BYTES_PER_PASS / 3.5 / (4 * 10)) - n_beads * 3
    assert default.automatic_members_per_pass(n_beads, n_pairs, cpu) == 3
    assert default.automatic_members_per_pass(n_beads, 24000, gpu) == paper.automatic_members_per_pass(n_beads, 46000, gpu) == 8

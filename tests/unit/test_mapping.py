"""CG mapping: centres of mass across the periodic boundary, force sums, units, bad input."""

from __future__ import annotations

import re
import subprocess

import MDAnalysis as mda
import numpy as np
import pytest

from conftest import kdcg
from kdcg.cg import mapping
from kdcg.errors import InputError
from kdcg.units import KJ_MOL_NM_TO_KCAL_MOL_A


def test_hand_built_periodic_molecule_split_across_the_boundary():
    # box 10 A; a bent triatomic whose atoms sit at x = 9.5 | 0.5, 1.5 (split across x = 0)
    edges = np.array([10.0, 10.0, 10.0])
    x = np.array([[9.5, 5.0, 5.0], [0.5, 5.0, 5.0], [1.5, 6.0, 5.0], [3.0, 3.0, 3.0]])
    masses = np.array([1.0, 12.0, 16.0, 35.45])
    f = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 0.0], [0.25, 0.25, 0.25], [7.0, -7.0, 1.0]])
    bm = mapping.build_bead_map(4, [np.array([0, 1, 2]), np.array([3])], np.array([[0, 1], [1, 2]]), masses,
                                ["MOL", "CL"], np.array([1, 2]))
    whole = mapping.make_whole(x, edges, bm)
    np.testing.assert_allclose(whole[:3], [[9.5, 5, 5], [10.5, 5, 5], [11.5, 6, 5]])
    r = mapping.map_positions(whole, edges, bm.com_matrix())
    com_x = (1 * 9.5 + 12 * 10.5 + 16 * 11.5) / 29.0  # 11.017..., outside the box: wraps to 1.017...
    com_y = (1 * 5 + 12 * 5 + 16 * 6) / 29.0
    np.testing.assert_allclose(r[0], [com_x - 10.0, com_y, 5.0], atol=1e-12)
    np.testing.assert_allclose(r[1], [3.0, 3.0, 3.0])
    F = mapping.map_forces(f, bm.sum_matrix())
    np.testing.assert_allclose(F, [[-2.75, 2.75, 3.25], [7.0, -7.0, 1.0]])
    np.testing.assert_allclose(bm.bead_masses, [29.0, 35.45])
    assert bm.species_names == ["MOL", "CL"] and bm.bead_species.tolist() == [1, 2]


def test_molecule_wider_than_half_the_box_is_detected():
    edges = np.array([10.0, 10.0, 10.0])
    x = np.array([[0.0, 0, 0], [4.0, 0, 0], [8.0, 0, 0]])  # bonds of 4 A: whole extent 8 A > 5 A
    bm = mapping.build_bead_map(3, [np.array([0, 1, 2])], np.array([[0, 1], [1, 2]]), np.ones(3), ["MOL"], np.array([1]))
    whole = mapping.make_whole(x, edges, bm)
    with pytest.raises(InputError, match="wider than half the box"):
        mapping.check_frame(np.zeros((3, 3)), whole, edges, bm, "traj.trr", 0)


# ----- a real GROMACS topology (.tpr) and a hand-written .trr -------------------------------

UREA_XYZ_NM = np.array([  # urea centred near the origin: C, O, N1, N2, H11, H12, H21, H22
    [0.000, 0.000, 0.0], [0.000, 0.123, 0.0], [0.114, -0.067, 0.0], [-0.114, -0.067, 0.0],
    [0.200, -0.016, 0.0], [0.114, -0.168, 0.0], [-0.200, -0.016, 0.0], [-0.114, -0.168, 0.0]])
UREA_MASS = np.array([12.011, 15.999, 14.007, 14.007, 1.008, 1.008, 1.008, 1.008])
BOX_NM = 2.0


@pytest.fixture
def urea_chloride_tpr(tmp_path, tiny_config):
    """2 urea + 1 chloride in a 2 nm cube; urea 1 straddles the x = 0 face."""
    from kdcg.aa import system

    cfg = dict(tiny_config)
    cfg["system"] = dict(tiny_config["system"])
    by = {m["resname"]: m for m in tiny_config["system"]["molecules"]}
    cfg["system"]["molecules"] = [dict(by["UREA"], count=2), dict(by["CL"], count=1)]
    top = system.write_topology(cfg, tmp_path / "topol.top")
    x = np.concatenate([UREA_XYZ_NM + [0.0, 1.0, 1.0], UREA_XYZ_NM + [1.0, 0.5, 1.5], [[1.5, 1.5, 0.5]]])
    x = x - BOX_NM * np.floor(x / BOX_NM)
    names = ["C1", "O1", "N1", "N2", "H11", "H12", "H21", "H22"]
    lines = ["test", "17"]
    for i, (res, name) in enumerate([(1, n) for n in names] + [(2, n) for n in names] + [(3, "CL")]):
        resname = "UREA" if res < 3 else "CL"
        lines.append(f"{res:5d}{resname:<5}{name:>5}{i + 1:5d}{x[i, 0]:8.3f}{x[i, 1]:8.3f}{x[i, 2]:8.3f}")
    lines.append(f"{BOX_NM:10.5f}{BOX_NM:10.5f}{BOX_NM:10.5f}")
    gro = tmp_path / "conf.gro"
    gro.write_text("\n".join(lines) + "\n")
    mdp = tmp_path / "rerun.mdp"
    mdp.write_text("integrator = md\nnsteps = 0\ncutoff-scheme = Verlet\nrcoulomb = 0.9\nrvdw = 0.9\ncoulombtype = Reaction-Field\n")
    tpr = tmp_path / "conf.tpr"
    subprocess.run(["gmx", "grompp", "-f", mdp, "-c", gro, "-p", top, "-o", tpr, "-po", tmp_path / "out.mdp"],
                   check=True, capture_output=True, cwd=tmp_path)
    positions_A = np.round(x, 3) * 10.0
    return tpr, positions_A


def write_trr(path, tpr, positions_A, forces_kj_mol_A=None, n_frames=3, n_atoms=None):
    """A TRR of n_frames; frame k has forces (k + 1) * forces (MDAnalysis units: A, kJ/mol/A)."""
    n = n_atoms or mda.Universe(str(tpr)).atoms.n_atoms
    u = mda.Universe.empty(n, trajectory=True, forces=forces_kj_mol_A is not None)
    with mda.Writer(str(path), n_atoms=n) as w:
        for k in range(n_frames):
            u.atoms.positions = positions_A[:n]
            u.dimensions = [BOX_NM * 10, BOX_NM * 10, BOX_NM * 10, 90, 90, 90]
            u.trajectory.ts.time = 2.0 * k
            u.trajectory.ts.data["step"] = k
            if forces_kj_mol_A is not None:
                u.atoms.forces = forces_kj_mol_A[:n] * (k + 1)
            w.write(u.atoms)


def test_map_command_on_real_tpr_and_trr(tmp_path, urea_chloride_tpr):
    tpr, pos = urea_chloride_tpr
    rng = np.random.default_rng(3)
    forces = rng.normal(0, 500.0, size=(17, 3))  # kJ/mol/A in MDAnalysis' units
    trr = tmp_path / "traj.trr"
    write_trr(trr, tpr, pos, forces)
    out = tmp_path / "dataset.npz"
    kdcg("map", "--topology", tpr, "--trajectory", trr, "--out", out, "--species", "UREA=urea", "CL=Cl")
    d = mapping.load_dataset(out)
    assert d["R"].shape == (3, 3, 3) and d["F"].shape == (3, 3, 3)
    assert d["species_names"].tolist() == ["urea", "Cl"] and d["Z"][0].tolist() == [1, 1, 2]
    np.testing.assert_allclose(d["masses"], [UREA_MASS.sum(), UREA_MASS.sum(), 35.45], rtol=1e-6)
    np.testing.assert_allclose(d["time_ps"], [0.0, 2.0, 4.0])
    np.testing.assert_allclose(d["cell"][1], np.diag([20.0, 20.0, 20.0]), rtol=1e-6)
    # known centres of mass: urea 1 straddles x = 0, its COM must come out near x = 0 (wrapped)
    com_local = (UREA_MASS[:, None] * UREA_XYZ_NM).sum(0) / UREA_MASS.sum() * 10.0
    expect = np.array([[0.0, 10.0, 10.0] + com_local, [10.0, 5.0, 15.0] + com_local, [15.0, 15.0, 5.0]])
    expect = expect - 20.0 * np.floor(expect / 20.0)
    np.testing.assert_allclose(d["R"][0], expect, atol=2e-3)  # .gro precision is 0.01 A
    # summed forces, converted kJ/mol/A -> kcal/mol/A, per frame
    for k in range(3):
        f = forces * (k + 1) / 4.184
        np.testing.assert_allclose(d["F"][k], [f[:8].sum(0), f[8:16].sum(0), f[16]], rtol=1e-5, atol=1e-3)


def test_force_units_against_gromacs_raw_values(tmp_path, urea_chloride_tpr):
    """gmx dump prints the file's own kJ/mol/nm; the dataset holds them / 41.84 as kcal/mol/A."""
    tpr, pos = urea_chloride_tpr
    forces = np.zeros((17, 3))
    forces[16] = [100.0, -50.0, 25.0]  # chloride alone: its bead force is its atomic force
    trr = tmp_path / "traj.trr"
    write_trr(trr, tpr, pos, forces, n_frames=1)
    dump = subprocess.run(["gmx", "dump", "-f", trr], capture_output=True, text=True).stdout
    m = re.search(r"f\[\s*16\]=\{\s*([-\d.e+]+),\s*([-\d.e+]+),\s*([-\d.e+]+)\}", dump)
    raw_kj_mol_nm = np.array([float(v) for v in m.groups()])
    np.testing.assert_allclose(raw_kj_mol_nm, [1000.0, -500.0, 250.0], rtol=1e-5)
    out = tmp_path / "d.npz"
    kdcg("map", "--topology", tpr, "--trajectory", trr, "--out", out)
    F = mapping.load_dataset(out)["F"][0, 2]
    np.testing.assert_allclose(F, raw_kj_mol_nm * KJ_MOL_NM_TO_KCAL_MOL_A, rtol=1e-5)
    np.testing.assert_allclose(F, [1000 / 41.84, -500 / 41.84, 250 / 41.84], rtol=1e-5)


def _map_error(tmp_path, tpr, trr) -> str:
    out = tmp_path / "bad.npz"
    proc = kdcg("map", "--topology", tpr, "--trajectory", trr, "--out", out, check=False)
    assert proc.returncode == 2, proc.stderr
    assert not out.exists(), "a failed mapping must not leave a dataset behind"
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("kdcg error: ") and str(trr) in last
    return last


def test_trajectory_without_forces(tmp_path, urea_chloride_tpr):
    tpr, pos = urea_chloride_tpr
    trr = tmp_path / "noforces.trr"
    write_trr(trr, tpr, pos, None)
    assert "has no forces" in _map_error(tmp_path, tpr, trr)


def test_atom_count_mismatch(tmp_path, urea_chloride_tpr):
    tpr, pos = urea_chloride_tpr
    trr = tmp_path / "short.trr"
    write_trr(trr, tpr, pos, np.ones((17, 3)), n_atoms=16)
    assert "atom count does not match" in _map_error(tmp_path, tpr, trr)


def test_nan_forces(tmp_path, urea_chloride_tpr):
    tpr, pos = urea_chloride_tpr
    forces = np.ones((17, 3))
    forces[5, 1] = np.nan
    trr = tmp_path / "nan.trr"
    write_trr(trr, tpr, pos, forces)
    msg = _map_error(tmp_path, tpr, trr)
    assert "non-finite force" in msg and "atom 6" in msg and "frame 0" in msg


def test_molecule_wider_than_half_the_box_in_a_file(tmp_path, urea_chloride_tpr):
    tpr, pos = urea_chloride_tpr
    pos = pos.copy()
    pos[2] = pos[0] + [8.0, 0, 0]  # N1 8 A from C, N2 8 A the other way: 16 A > 10 A
    pos[3] = pos[0] - [8.0, 0, 0]
    trr = tmp_path / "wide.trr"
    write_trr(trr, tpr, pos - 20.0 * np.floor(pos / 20.0), np.ones((17, 3)))
    assert "wider than half the box" in _map_error(tmp_path, tpr, trr)


def test_missing_files_name_the_file(tmp_path):
    proc = kdcg("map", "--topology", tmp_path / "none.tpr", "--trajectory", tmp_path / "none.trr",
                "--out", tmp_path / "o.npz", check=False)
    assert proc.returncode == 2 and "none.tpr: file not found" in proc.stderr


def test_a_species_without_its_residue_in_the_topology(tmp_path, urea_chloride_tpr):
    tpr, pos = urea_chloride_tpr
    u = mda.Universe(str(tpr))
    with pytest.raises(InputError) as err:
        mapping.bead_map_from_universe(u, {"UREA": "urea", "CL": "Cl", "EGLY": "EG"}, str(tpr))
    assert str(err.value) == f"{tpr}: no residue named EGLY (species EG): the topology's residues are ['CL', 'UREA']"
    with pytest.raises(InputError, match=r"residues \['CL'\] have no species"):
        mapping.bead_map_from_universe(u, {"UREA": "urea"}, str(tpr))


def _universe(resindex_of_atom, bonds):
    n_res = max(resindex_of_atom) + 1
    u = mda.Universe.empty(len(resindex_of_atom), n_residues=n_res, atom_resindex=resindex_of_atom, trajectory=True)
    u.add_TopologyAttr("resname", [f"R{i}" for i in range(n_res)])
    u.add_TopologyAttr("resid", list(range(1, n_res + 1)))
    u.add_TopologyAttr("masses", np.ones(len(resindex_of_atom)))
    u.add_TopologyAttr("bonds", bonds)
    return u


def test_a_molecule_that_is_not_one_bonded_residue_is_refused():
    """A residue whose atoms no bond joins, or a bonded piece across two residues: no bead to map."""
    ok = mapping.bead_map_from_universe(_universe([0, 0, 0, 1, 1], [(0, 1), (1, 2), (3, 4)]))
    assert ok.n_beads == 2 and ok.bead_of_atom.tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(InputError, match=r"^top.tpr: residue R0 1 falls into 2 pieces that no bond joins"):
        mapping.bead_map_from_universe(_universe([0, 0, 0, 1, 1], [(0, 1), (3, 4)]), where="top.tpr")
    with pytest.raises(InputError, match=r"^top.tpr: a bonded molecule spans 2 residues \(R0 1, R1 2\)"):
        mapping.bead_map_from_universe(_universe([0, 0, 0, 1, 1], [(0, 1), (1, 2), (2, 3), (3, 4)]), where="top.tpr")

"""The OPLS-DES topology and the Packmol box."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from conftest import REPO, kdcg
from kdcg.aa import system
from kdcg.errors import InputError


def _charges_and_masses(itp):
    sections = system._itp_sections(itp)
    atoms = sections["atoms"]
    return np.array([float(a[6]) for a in atoms]), np.array([float(a[7]) for a in atoms]), sections


@pytest.mark.parametrize("name, charge, mass", [("choline", 0.8, 104.171), ("chloride", -0.8, 35.45), ("urea", 0.0, 60.056)])
def test_molecules_carry_the_scaled_charges_and_real_masses(name, charge, mass):
    q, m, _ = _charges_and_masses(REPO / f"resources/opls_des/{name}.itp")
    assert q.sum() == pytest.approx(charge, abs=1e-9)  # OPLS-DES: charges scaled by 0.8
    assert m.sum() == pytest.approx(mass, abs=2e-3)


def test_published_values_are_converted_to_gromacs_units():
    _, _, sec = _charges_and_masses(REPO / "resources/opls_des/choline.itp")
    bond = next(b for b in sec["bonds"] if b[:2] == ["1", "2"])  # N-CS: 1.516 A, 490 kcal/mol/A^2
    assert float(bond[3]) == pytest.approx(0.1516) and float(bond[4]) == pytest.approx(2 * 490 * 4.184 * 100)
    ff = system._itp_sections(REPO / "resources/opls_des/forcefield.itp")
    cl = next(t for t in ff["atomtypes"] if t[0] == "Cl")  # 3.77 A, 0.148 kcal/mol
    assert float(cl[4]) == pytest.approx(0.377) and float(cl[5]) == pytest.approx(0.148 * 4.184)
    n_dihedrals = sum(1 for _ in sec["dihedrals"])
    assert n_dihedrals == 48 + 4  # the 48 propers of the bond graph (as published), 4 impropers
    assert len(sec["pairs"]) == 48  # one 1-4 pair per proper (no rings)


def test_structure_must_match_its_itp(tmp_path, tiny_config):
    pdb = tmp_path / "urea_missing.pdb"
    lines = (REPO / "resources/opls_des/urea.pdb").read_text().splitlines()
    pdb.write_text("\n".join(l for l in lines if " H22 " not in l) + "\n")
    entry = dict(tiny_config["system"]["molecules"][2], structure=str(pdb))
    with pytest.raises(InputError, match=r"urea_missing.pdb: 7 atoms but urea.itp defines 8 \(atoms missing\?\)"):
        system.read_molecule(entry)
    entry = dict(tiny_config["system"]["molecules"][2], resname="UREX")
    with pytest.raises(InputError, match="moleculetype is 'UREA'"):
        system.read_molecule(entry)


def test_packmol_box_has_the_composition_and_grompp_accepts_it(tmp_path, tiny_config):
    top = system.write_topology(tiny_config, tmp_path / "topol.top")
    gro = system.pack_box(tiny_config, tmp_path / "box.gro")
    lines = gro.read_text().splitlines()
    n_atoms = 20 * 21 + 20 * 1 + 40 * 8
    assert int(lines[1]) == n_atoms and len(lines) == n_atoms + 3
    assert lines[-1].split() == ["1.92700"] * 3
    xyz = np.array([[float(l[20:28]), float(l[28:36]), float(l[36:44])] for l in lines[2:-1]])
    assert xyz.min() >= 0.0 and xyz.max() <= 1.927  # inside the cube
    mdp = tmp_path / "em.mdp"
    mdp.write_text(kdcg("mdp", "em", "--config", REPO / "tests/config/tiny.yaml").stdout)
    subprocess.run(["gmx", "grompp", "-f", mdp, "-c", gro, "-p", top, "-o", tmp_path / "em.tpr", "-po", tmp_path / "o.mdp"],
                   check=True, capture_output=True, cwd=tmp_path)
    # the paper's LJ treatment (LJ-PME) on the same box: grompp accepts it
    from kdcg.aa import gromacs

    lj_pme = {**tiny_config, "aa_md": {**tiny_config["aa_md"], "lj_treatment": "pme"}}
    (tmp_path / "ljpme.mdp").write_text(gromacs.mdp_text("nvt_equil", lj_pme))
    subprocess.run(["gmx", "grompp", "-f", tmp_path / "ljpme.mdp", "-c", gro, "-p", top, "-o", tmp_path / "ljpme.tpr",
                    "-po", tmp_path / "o2.mdp"], check=True, capture_output=True, cwd=tmp_path)
    assert "vdwtype                  = PME" in (tmp_path / "o2.mdp").read_text().replace("vdw-type", "vdwtype")


def test_the_1_4_pairs_are_a_switch(tmp_path, tiny_config):
    """false (the paper, the default): no [ pairs ] in the written .itp files; true: OPLS-AA's pairs."""
    off = system.write_topology(tiny_config, tmp_path / "off" / "topol.top")
    on = system.write_topology({**tiny_config, "system": {**tiny_config["system"], "pairs_14": True}},
                               tmp_path / "on" / "topol.top")
    for name in ("choline.itp", "urea.itp"):
        text_off = (off.parent / "toppar" / name).read_text()
        text_on = (on.parent / "toppar" / name).read_text()
        assert "[ pairs ]" in text_on and "[ pairs ]" not in text_off
        assert system._itp_sections(off.parent / "toppar" / name).keys() == \
            system._itp_sections(on.parent / "toppar" / name).keys() - {"pairs"}
        assert system._itp_sections(off.parent / "toppar" / name)["dihedrals"] == \
            system._itp_sections(on.parent / "toppar" / name)["dihedrals"]

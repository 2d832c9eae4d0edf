"""The OPLS-DES topology and the Packmol box."""

from __future__ import annotations

import subprocess
import sys

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


def test_ethylene_glycol_carries_the_published_values():
    """Ethaline's donor (OPLS-DES repository, DES/ITP/ethgly_DES.itp: its GROMACS columns)."""
    q, m, sec = _charges_and_masses(REPO / "resources/opls_des/ethylene_glycol.itp")
    assert q.sum() == pytest.approx(0.0, abs=1e-9) and m.sum() == pytest.approx(62.068, abs=1e-3)
    assert sorted(q.round(3).tolist()) == [-0.56, -0.56] + [0.048] * 4 + [0.116] * 2 + [0.348] * 2
    ff = system._itp_sections(REPO / "resources/opls_des/forcefield.itp")
    og = next(t for t in ff["atomtypes"] if t[0] == "OG")  # 3.00 A, 0.170 kcal/mol
    assert float(og[4]) == pytest.approx(0.300) and float(og[5]) == pytest.approx(0.170 * 4.184)
    co = next(b for b in sec["bonds"] if b[:2] == ["1", "3"])  # C-O: 1.430 A, 320 kcal/mol/A^2
    assert float(co[3]) == pytest.approx(0.1430) and float(co[4]) == pytest.approx(2 * 320 * 4.184 * 100)
    propers = [d for d in sec["dihedrals"]]
    occo = next(d for d in propers if d[:4] == ["3", "1", "2", "4"])
    np.testing.assert_allclose([float(v) for v in occo[5:]], np.array([3.887, -1.192, 3.206, 0.0]) * 4.184, atol=1e-4)
    assert len(propers) == 3  # O-C-C-O and the two C-C-O-H: the published file's only torsions
    assert sec["exclusions"] == [["4", "5"], ["3", "6"]]  # each hydroxyl H and the far O
    assert len(sec["pairs"]) == 15 and len(sec["angles"]) == 14


def test_the_build_script_rewrites_the_shipped_files_unchanged(tmp_path):
    """resources/opls_des/ holds exactly what build.py writes from the published values."""
    import shutil

    shutil.copytree(REPO / "resources/opls_des", tmp_path / "opls_des")
    subprocess.run([sys.executable, str(tmp_path / "opls_des/build.py")], check=True, capture_output=True)
    for path in (REPO / "resources/opls_des").glob("*.[ip][td][pb]"):
        assert (tmp_path / "opls_des" / path.name).read_text() == path.read_text(), path.name


def _ethaline_entry(tmp_path, **changes):
    cfg_text = (REPO / "tests/config/tiny-ethaline.yaml").read_text()
    import yaml

    entry = next(m for m in yaml.safe_load(cfg_text)["system"]["molecules"] if m["species"] == "EG")
    entry = {**entry, "itp": str(REPO / entry["itp"]), "structure": str(REPO / entry["structure"])}
    return {**entry, **changes}


def test_a_new_molecule_gets_one_clear_line_for_each_mistake(tmp_path):
    """A structure whose residue is not the species' resname, an .itp whose atom type the force field
    lacks, a molecule whose atoms no bond joins into one bead: one line each, naming the file."""
    pdb = tmp_path / "eg.pdb"
    pdb.write_text((REPO / "resources/opls_des/ethylene_glycol.pdb").read_text().replace(" EGLY", " ETG "))
    with pytest.raises(InputError, match=r"eg.pdb: no residue EGLY for species 'EG': the structure's residues are named"
                                         r" \['ETG'\]"):
        system.read_molecule(_ethaline_entry(tmp_path, structure=str(pdb)))

    itp = tmp_path / "ethylene_glycol.itp"
    itp.write_text((REPO / "resources/opls_des/ethylene_glycol.itp").read_text().replace(" OG  ", " OX  ", 1))
    molecule = system.read_molecule(_ethaline_entry(tmp_path, itp=str(itp)))
    with pytest.raises(InputError) as err:
        system.check_atom_types(REPO / "resources/opls_des/forcefield.itp", [molecule])
    assert str(err.value) == (f"{itp}: atom 3 (O1) has type 'OX', which the force field "
                              f"{REPO / 'resources/opls_des/forcefield.itp'} does not define in its [ atomtypes ]")
    # a force field that #includes its atom types is read through the include
    ff = tmp_path / "ff.itp"
    ff.write_text('#include "types.itp"\n')
    (tmp_path / "types.itp").write_text((REPO / "resources/opls_des/forcefield.itp").read_text() + "  OX 15.999 0 A 0.3 0.7\n")
    system.check_atom_types(ff, [molecule])

    text = (REPO / "resources/opls_des/ethylene_glycol.itp").read_text()
    itp.write_text(text.replace("    1   2  1  0.15290  224262.4\n", ""))  # the C-C bond forgotten
    with pytest.raises(InputError, match=r"ethylene_glycol.itp: molecule EGLY cannot be one bead: its atoms form 2 groups"
                                         r" that no bond joins \(C1 O1 HO1 H11 H12 \| C2 O2 HO2 H21 H22\)"):
        system.read_molecule(_ethaline_entry(tmp_path, itp=str(itp)))


def test_check_config_names_a_missing_atom_type_in_one_line(tmp_path):
    from conftest import workflow_copy

    wf = workflow_copy(tmp_path)
    itp = wf / "resources/opls_des/ethylene_glycol.itp"
    itp.write_text(itp.read_text().replace(" HG  ", " HX  "))
    proc = subprocess.run([sys.executable, "-m", "kdcg", "check-config", "tests/config/tiny-ethaline.yaml"], cwd=wf,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "kdcg error: tests/config/tiny-ethaline.yaml: config key 'system.molecules': resources/opls_des/ethylene_glycol.itp:"
        " atom 7 (H11) has type 'HX', which the force field resources/opls_des/forcefield.itp does not define in its"
        " [ atomtypes ]")


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
    assert lines[-1].split() == ["1.93200"] * 3
    xyz = np.array([[float(l[20:28]), float(l[28:36]), float(l[36:44])] for l in lines[2:-1]])
    assert xyz.min() >= 0.0 and xyz.max() <= 1.932  # inside the cube
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


def test_glycerol_carries_the_published_values():
    """Glyceline's donor (OPLS-DES repository, DES/ITP/glycerol_DES.itp); its HC type is kdcg's HB."""
    q, m, sec = _charges_and_masses(REPO / "resources/opls_des/glycerol.itp")
    assert q.sum() == pytest.approx(0.0, abs=1e-9) and m.sum() == pytest.approx(92.094, abs=1e-3)
    ff = {t[0]: t for t in system._itp_sections(REPO / "resources/opls_des/forcefield.itp")["atomtypes"]}
    assert float(ff["OM"][4]) == pytest.approx(0.307) and float(ff["OM"][5]) == pytest.approx(0.374 * 4.184)
    assert float(ff["HB"][5]) == pytest.approx(0.066 * 4.184) and float(ff["HC"][5]) == 0.0  # urea's HC untouched
    assert [a[1] for a in sec["atoms"]].count("HB") == 4
    occo = next(d for d in sec["dihedrals"] if d[:4] == ["2", "1", "3", "11"])  # O-C-C-O: V1 12.234 kcal/mol
    assert float(occo[5]) == pytest.approx(12.234 * 4.184, abs=1e-4)
    assert len(sec["dihedrals"]) == 27  # the published 28 less its all-zero improper
    assert sec["exclusions"] == [["2", "13"], ["2", "14"], ["5", "11"], ["5", "12"]]


#: measured densities (g/cm^3) the shipped configs' boxes are sized for, with their sources
DENSITIES = {
    "config/paper.yaml": 1.196,  # the paper's box (44.84 A for 250 / 250 / 500)
    "config/config.yaml": 1.196, "config/study.yaml": 1.196, "tests/config/tiny.yaml": 1.196,
    "config/ethaline.yaml": 1.1156,  # Yadav et al., Thermochim. Acta 2015, 600, 95 (298.15 K)
    "tests/config/tiny-ethaline.yaml": 1.1156,
    "config/glyceline.yaml": 1.1864,  # Sci. Rep. 2021, 11, 24081, Table 10 (298.15 K)
}


@pytest.mark.parametrize("path", sorted(DENSITIES))
def test_each_shipped_box_has_its_solvents_density(path):
    import yaml

    cfg = yaml.safe_load((REPO / path).read_text())
    cfg["system"]["molecules"] = [{**m, "itp": str(REPO / m["itp"]), "structure": str(REPO / m["structure"])}
                                  for m in cfg["system"]["molecules"]]
    mass_g = sum(m.count * sum(m.masses_amu) for m in system.read_molecules(cfg)) / system.AVOGADRO
    density = mass_g / (cfg["system"]["box_edge_A"] ** 3 * 1e-24)
    assert density == pytest.approx(DENSITIES[path], rel=2e-3)


@pytest.mark.parametrize("donor, resname, edge_A", [("ethylene_glycol", "EGLY", 19.88), ("glycerol", "GLYC", 20.85)])
def test_a_new_solvents_box_passes_grompp_and_minimises(tmp_path, tiny_config, donor, resname, edge_A):
    """Choline chloride with a new donor (20 / 20 / 40 at the measured density): Packmol packs it,
    grompp accepts kdcg's topology, and steepest descent converges, the energy brought down."""
    cfg = {**tiny_config, "system": {**tiny_config["system"], "box_edge_A": edge_A}}
    cfg["system"]["molecules"] = tiny_config["system"]["molecules"][:2] + [
        {"species": "D", "resname": resname, "count": 40, "itp": str(REPO / f"resources/opls_des/{donor}.itp"),
         "structure": str(REPO / f"resources/opls_des/{donor}.pdb")}]
    cfg["aa_md"] = {**tiny_config["aa_md"], "em_max_steps": 300}
    top = system.write_topology(cfg, tmp_path / "topol.top")
    gro = system.pack_box(cfg, tmp_path / "box.gro")
    from kdcg.aa import gromacs

    (tmp_path / "em.mdp").write_text(gromacs.mdp_text("em", cfg))
    subprocess.run(["gmx", "grompp", "-f", "em.mdp", "-c", gro, "-p", top, "-o", "em.tpr", "-po", "o.mdp"],
                   check=True, capture_output=True, cwd=tmp_path)
    run = subprocess.run(["gmx", "mdrun", "-s", "em.tpr", "-deffnm", "em", "-nt", "1"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    log = (tmp_path / "em.log").read_text().splitlines()
    header = next(i for i, line in enumerate(log) if "Potential" in line and "Coul" in line)  # step 0's table
    first = float(log[header + 1].split()[log[header].index("Potential") // 15])  # 15-character columns
    final = float(next(line for line in log if line.startswith("Potential Energy")).split()[-1])
    assert any("converged to Fmax < 1000" in line for line in log)
    assert np.isfinite(final) and first - final > 1000.0  # kJ/mol: the packed box's clashes relaxed

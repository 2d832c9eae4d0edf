"""Write kdcg's OPLS-DES topology (.itp) and molecule structures (.pdb): choline, chloride, urea
(reline), ethylene glycol (ethaline) and glycerol (glyceline).

Source of every number below: B. Doherty and O. Acevedo, "OPLS Force Field for Choline
Chloride-Based Deep Eutectic Solvents", J. Phys. Chem. B 122, 9982-9993 (2018),
doi:10.1021/acs.jpcb.8b06647 -- the OPLS-DES parameter set, charges already scaled by 0.8.
Values are kept here in the units of that publication (Angstrom, kcal/mol, degrees) and
converted once to GROMACS units (nm, kJ/mol) when the files are written.

Ethylene glycol: the values of the OPLS-DES repository's GROMACS topology
(github.com/orlandoacevedo/DES, DES/ITP/ethgly_DES.itp and ethgly_atomtypes_DES.itp, version
6/2018), which its own ChCl:EG topology (DES/TOP/CCEtg_DES.top) runs. Two of that file's
kcal/Angstrom comments disagree with its GROMACS columns: the comments give epsilon 1.75 times
larger for CG, HG and OG (0.1155, 0.0525, 0.2975 kcal/mol) and r0(C-O) 1.410 A; kdcg takes the
GROMACS columns (epsilon 0.066, 0.030, 0.170 kcal/mol; r0 1.430 A), the numbers GROMACS reads.
Glycerol: the same repository's DES/ITP/glycerol_DES.itp and glycerol_atomtypes_DES.itp (comments
and GROMACS columns agree); its methylene hydrogen type HC is renamed HB here, because urea's HC
(a hydrogen on nitrogen, no Lennard-Jones) already holds the name.

The functional form is OPLS-AA: geometric combination rules, 1-4 pairs scaled by 0.5 for
both Lennard-Jones and Coulomb (generated from the bond graph below), Fourier dihedrals.

Structures are built from internal coordinates at the force field's equilibrium bond
lengths and angles; the energy minimisation of the workflow relaxes what remains.

Run from the repository root:  python resources/opls_des/build.py
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

KCAL_TO_KJ = 4.184
HERE = Path(__file__).resolve().parent
CITATION = (
    "; OPLS-DES (Doherty & Acevedo, J. Phys. Chem. B 2018, 122, 9982; charges scaled by 0.8),\n"
    "; written by kdcg from the published values: resources/opls_des/build.py\n"
)

# type: (mass amu, sigma Angstrom, epsilon kcal/mol)
ATOM_TYPES = {
    "CS": (12.011, 3.50, 0.066),
    "HS": (1.008, 2.60, 0.030),
    "NA": (14.007, 3.25, 0.170),
    "CA": (12.011, 3.50, 0.066),
    "CW": (12.011, 3.50, 0.066),
    "OY": (15.999, 3.07, 0.170),
    "HA": (1.008, 2.50, 0.030),
    "HW": (1.008, 2.20, 0.030),
    "HY": (1.008, 0.00, 0.000),
    "Cl": (35.45, 3.77, 0.148),
    "C": (12.011, 3.75, 0.1575),
    "O": (15.999, 2.96, 0.3150),
    "N": (14.007, 3.55, 0.2550),
    "HT": (1.008, 0.00, 0.000),
    "HC": (1.008, 0.00, 0.000),
    # ethylene glycol
    "CG": (12.011, 3.50, 0.066),
    "HG": (1.008, 2.50, 0.030),
    "OG": (15.999, 3.00, 0.170),
    "HO": (1.008, 0.00, 0.000),
    # glycerol (its published HC is HB here; it shares HO with ethylene glycol: same values)
    "CM": (12.011, 3.50, 0.1452),
    "CB": (12.011, 3.50, 0.1452),
    "OM": (15.999, 3.07, 0.3740),
    "OH": (15.999, 3.07, 0.3740),
    "HM": (1.008, 0.00, 0.000),
    "HZ": (1.008, 2.50, 0.0660),
    "HB": (1.008, 2.50, 0.0660),
}

# bond type pair: (r0 Angstrom, kr kcal/mol/A^2 in the OPLS convention E = kr (r - r0)^2)
BONDS = {
    ("CA", "HA"): (1.0990, 340.0),
    ("CA", "NA"): (1.4980, 490.0),
    ("CS", "NA"): (1.5160, 490.0),
    ("CS", "HS"): (1.0805, 340.0),
    ("CS", "CW"): (1.5210, 317.0),
    ("CW", "HW"): (1.0850, 340.0),
    ("CW", "OY"): (1.3950, 450.0),
    ("HY", "OY"): (0.9490, 553.0),
    ("C", "O"): (1.229, 570.0),
    ("C", "N"): (1.335, 490.0),
    ("HT", "N"): (1.010, 434.0),
    ("HC", "N"): (1.010, 434.0),
    ("CG", "CG"): (1.529, 268.0),
    ("CG", "HG"): (1.090, 340.0),
    ("CG", "OG"): (1.430, 320.0),
    ("HO", "OG"): (0.945, 553.0),
    ("CM", "OM"): (1.410, 320.0),
    ("CB", "CM"): (1.529, 268.0),
    ("HM", "OM"): (0.945, 553.0),
    ("CM", "HZ"): (1.090, 340.0),
    ("CB", "HB"): (1.090, 340.0),
    ("CB", "OH"): (1.410, 320.0),
    ("HO", "OH"): (0.945, 553.0),
}

# angle type triple (centre in the middle): (theta0 degrees, k kcal/mol/rad^2, OPLS convention)
ANGLES = {
    ("HA", "CA", "HA"): (110.01, 35.0),
    ("HA", "CA", "NA"): (108.90, 35.0),
    ("CA", "NA", "CS"): (110.20, 51.8),
    ("CA", "NA", "CA"): (108.73, 55.0),
    ("HS", "CS", "NA"): (106.40, 35.0),
    ("CW", "CS", "NA"): (116.60, 70.0),
    ("HS", "CS", "HS"): (108.60, 35.0),
    ("CW", "CS", "HS"): (109.30, 35.0),
    ("CS", "CW", "HW"): (108.30, 35.0),
    ("CS", "CW", "OY"): (109.60, 80.0),
    ("HW", "CW", "HW"): (107.40, 35.0),
    ("HW", "CW", "OY"): (111.60, 35.0),
    ("CW", "OY", "HY"): (110.90, 35.0),
    ("N", "C", "O"): (122.9, 80.0),
    ("C", "N", "HT"): (119.8, 35.0),
    ("C", "N", "HC"): (119.8, 35.0),
    ("N", "C", "N"): (114.2, 70.0),
    ("HC", "N", "HT"): (120.0, 35.0),
    ("CG", "CG", "OG"): (108.0, 50.0),
    ("CG", "CG", "HG"): (110.7, 37.5),
    ("HG", "CG", "HG"): (107.8, 33.0),
    ("HG", "CG", "OG"): (109.5, 35.0),
    ("CG", "OG", "HO"): (108.5, 55.0),
    ("OM", "CM", "CB"): (109.5, 50.0),
    ("CM", "OM", "HM"): (108.5, 55.0),
    ("OM", "CM", "HZ"): (109.5, 35.0),
    ("CM", "CB", "HB"): (110.7, 37.5),
    ("CM", "CB", "OH"): (109.5, 50.0),
    ("CB", "OH", "HO"): (108.5, 55.0),
    ("CB", "CM", "CB"): (112.7, 58.35),
    ("CB", "CM", "HZ"): (110.7, 37.5),
    ("HB", "CB", "HB"): (107.8, 33.0),
    ("HB", "CB", "OH"): (109.5, 35.0),
}

# proper dihedral type quadruple: Fourier V1..V4 in kcal/mol
DIHEDRALS = {
    ("CW", "CS", "NA", "CA"): (0.100, 0.550, 0.650, 0.0),
    ("CA", "NA", "CA", "HA"): (0.0, 0.0, 0.825, 0.0),
    ("CS", "NA", "CA", "HA"): (0.0, 0.0, 0.940, 0.0),
    ("HS", "CS", "NA", "CA"): (0.0, 1.000, 0.700, 0.0),
    ("OY", "CW", "CS", "NA"): (-6.000, -5.000, 3.200, 0.0),
    ("OY", "CW", "CS", "HS"): (-0.500, -2.500, 0.250, 0.0),
    ("HW", "CW", "CS", "NA"): (-6.000, -7.000, 0.750, 0.0),
    ("HW", "CW", "CS", "HS"): (6.000, -3.000, 2.000, 0.0),
    ("HY", "OY", "CW", "CS"): (-0.356, -0.174, 0.350, 0.0),
    ("HY", "OY", "CW", "HW"): (-3.000, 1.000, -2.000, 0.0),
    ("O", "C", "N", "HT"): (0.0, 4.90, 0.0, 0.0),
    ("O", "C", "N", "HC"): (0.0, 4.90, 0.0, 0.0),
    ("HT", "N", "C", "N"): (0.0, 4.90, 0.0, 0.0),
    ("HC", "N", "C", "N"): (0.0, 4.90, 0.0, 0.0),
    ("OG", "CG", "CG", "OG"): (3.887, -1.192, 3.206, 0.0),
    ("CG", "CG", "OG", "HO"): (0.413, -0.754, 1.028, 0.0),
    # torsions the published ethylene glycol topology has no term for (all zero: not written)
    ("HG", "CG", "CG", "HG"): (0.0, 0.0, 0.0, 0.0),
    ("HG", "CG", "CG", "OG"): (0.0, 0.0, 0.0, 0.0),
    ("HG", "CG", "OG", "HO"): (0.0, 0.0, 0.0, 0.0),
    ("HM", "OM", "CM", "CB"): (-0.356, -0.174, 0.492, 0.0),
    ("HZ", "CM", "OM", "HM"): (0.0, 0.0, 0.352, 0.0),
    ("HB", "CB", "CM", "OM"): (0.0, 0.0, 0.468, 0.0),
    ("OH", "CB", "CM", "OM"): (12.234, 0.0, 0.0, 0.0),
    ("HO", "OH", "CB", "CM"): (-0.356, -0.174, 0.492, 0.0),
    ("HB", "CB", "CM", "CB"): (0.0, 0.0, 0.300, 0.0),
    ("OH", "CB", "CM", "CB"): (-1.552, 0.0, 0.0, 0.0),
    ("HB", "CB", "CM", "HZ"): (0.0, 0.0, 0.300, 0.0),
    ("OH", "CB", "CM", "HZ"): (0.0, 0.0, 0.468, 0.0),
    ("HO", "OH", "CB", "HB"): (0.0, 0.0, 0.352, 0.0),
}

# A molecule: atoms (name, type, charge e), bonds (1-based), impropers (atoms, V1..V4 kcal/mol),
# optional exclusions (atom pairs beyond nrexcl with no nonbonded interaction), and a z-matrix: per atom (bonded-to, angle-with, dihedral-with, r A, theta deg, phi deg).
MOLECULES = {
    "CHOL": {
        "file": "choline",
        "atoms": [
            ("N1", "NA", 0.791), ("C1", "CS", -0.131), ("C2", "CW", 0.132), ("O1", "OY", -0.468),
            ("HO", "HY", 0.275), ("C3", "CA", -0.100), ("C4", "CA", -0.100), ("C5", "CA", -0.100),
            ("H11", "HS", 0.068), ("H12", "HS", 0.068), ("H21", "HW", 0.034), ("H22", "HW", 0.034),
            ("H31", "HA", 0.033), ("H32", "HA", 0.033), ("H33", "HA", 0.033),
            ("H41", "HA", 0.033), ("H42", "HA", 0.033), ("H43", "HA", 0.033),
            ("H51", "HA", 0.033), ("H52", "HA", 0.033), ("H53", "HA", 0.033),
        ],
        "bonds": [(1, 2), (2, 3), (3, 4), (4, 5), (1, 6), (1, 7), (1, 8), (2, 9), (2, 10),
                  (3, 11), (3, 12), (6, 13), (6, 14), (6, 15), (7, 16), (7, 17), (7, 18),
                  (8, 19), (8, 20), (8, 21)],
        "impropers": [((6, 1, 7, 8), (0.0, 2.0, 0.0, 0.0)), ((2, 1, 6, 7), (0.0, 2.0, 0.0, 0.0)),
                      ((2, 1, 6, 8), (0.0, 2.0, 0.0, 0.0)), ((2, 1, 7, 8), (0.0, 2.0, 0.0, 0.0))],
        "zmatrix": [
            None,
            (1, None, None, 1.516, None, None),
            (2, 1, None, 1.521, 116.6, None),
            (3, 2, 1, 1.395, 109.6, 60.0),  # gauche N-C-C-O, choline's stable conformer
            (4, 3, 2, 0.949, 110.9, 180.0),
            (1, 2, 3, 1.498, 110.2, 180.0),
            (1, 2, 3, 1.498, 110.2, 60.0),
            (1, 2, 3, 1.498, 110.2, -60.0),
            (2, 1, 6, 1.0805, 106.4, 60.0),
            (2, 1, 6, 1.0805, 106.4, -60.0),
            (3, 2, 1, 1.085, 108.3, 180.0),
            (3, 2, 1, 1.085, 108.3, -60.0),
            (6, 1, 2, 1.099, 108.9, 180.0), (6, 1, 2, 1.099, 108.9, 60.0), (6, 1, 2, 1.099, 108.9, -60.0),
            (7, 1, 2, 1.099, 108.9, 180.0), (7, 1, 2, 1.099, 108.9, 60.0), (7, 1, 2, 1.099, 108.9, -60.0),
            (8, 1, 2, 1.099, 108.9, 180.0), (8, 1, 2, 1.099, 108.9, 60.0), (8, 1, 2, 1.099, 108.9, -60.0),
        ],
    },
    "CL": {
        "file": "chloride",
        "atoms": [("CL", "Cl", -0.800)],
        "bonds": [],
        "impropers": [],
        "zmatrix": [None],
    },
    "UREA": {
        "file": "urea",
        "atoms": [("C1", "C", 0.124), ("O1", "O", -0.322), ("N1", "N", -0.453), ("N2", "N", -0.453),
                  ("H11", "HC", 0.276), ("H12", "HT", 0.276), ("H21", "HC", 0.276), ("H22", "HT", 0.276)],
        "bonds": [(1, 2), (1, 3), (1, 4), (3, 5), (3, 6), (4, 7), (4, 8)],
        "impropers": [((6, 3, 1, 5), (0.0, 5.0, 0.0, 0.0)), ((8, 4, 1, 7), (0.0, 5.0, 0.0, 0.0)),
                      ((2, 1, 3, 4), (0.0, 21.0, 0.0, 0.0))],
        "zmatrix": [
            None,
            (1, None, None, 1.229, None, None),
            (1, 2, None, 1.335, 122.9, None),
            (1, 2, 3, 1.335, 122.9, 180.0),
            (3, 1, 2, 1.010, 119.8, 0.0),  # cis to O
            (3, 1, 2, 1.010, 119.8, 180.0),
            (4, 1, 2, 1.010, 119.8, 0.0),
            (4, 1, 2, 1.010, 119.8, 180.0),
        ],
    },
    "EGLY": {
        "file": "ethylene_glycol",
        "atoms": [("C1", "CG", 0.116), ("C2", "CG", 0.116), ("O1", "OG", -0.560), ("O2", "OG", -0.560),
                  ("HO1", "HO", 0.348), ("HO2", "HO", 0.348), ("H11", "HG", 0.048), ("H12", "HG", 0.048),
                  ("H21", "HG", 0.048), ("H22", "HG", 0.048)],
        "bonds": [(1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (1, 7), (1, 8), (2, 9), (2, 10)],
        "impropers": [],
        # each hydroxyl H and the other O (1-5): no intramolecular hydrogen bond, as published
        "exclusions": [(4, 5), (3, 6)],
        "zmatrix": [
            None,
            (1, None, None, 1.529, None, None),
            (1, 2, None, 1.430, 108.0, None),
            (2, 1, 3, 1.430, 108.0, 60.0),  # gauche O-C-C-O, the glycol's preferred conformer
            (3, 1, 2, 0.945, 108.5, 180.0),
            (4, 2, 1, 0.945, 108.5, 180.0),
            (1, 2, 3, 1.090, 110.7, 120.0),
            (1, 2, 3, 1.090, 110.7, -120.0),
            (2, 1, 4, 1.090, 110.7, 120.0),
            (2, 1, 4, 1.090, 110.7, -120.0),
        ],
    },
    "GLYC": {
        "file": "glycerol",
        "atoms": [("C2", "CM", 0.1420), ("O2", "OM", -0.5447), ("C1", "CB", 0.1600), ("C3", "CB", 0.1600),
                  ("HO2", "HM", 0.2912), ("H2", "HZ", 0.0221), ("H11", "HB", 0.0637), ("H12", "HB", 0.0637),
                  ("H31", "HB", 0.0637), ("H32", "HB", 0.0637), ("O1", "OH", -0.5470), ("O3", "OH", -0.5470),
                  ("HO1", "HO", 0.3043), ("HO3", "HO", 0.3043)],
        "bonds": [(1, 2), (1, 3), (1, 4), (2, 5), (1, 6), (3, 7), (3, 8), (4, 9), (4, 10), (3, 11), (4, 12),
                  (11, 13), (12, 14)],
        "impropers": [],
        # each terminal hydroxyl H and the middle O, the middle H and each terminal O (1-5), as published
        "exclusions": [(2, 13), (2, 14), (5, 11), (5, 12)],
        "zmatrix": [
            None,
            (1, None, None, 1.410, None, None),
            (1, 2, None, 1.529, 109.5, None),
            (1, 2, 3, 1.529, 109.5, 120.0),
            (2, 1, 3, 0.945, 108.5, 180.0),
            (1, 2, 3, 1.090, 109.5, -120.0),
            (3, 1, 2, 1.090, 110.7, 60.0),
            (3, 1, 2, 1.090, 110.7, -60.0),
            (4, 1, 2, 1.090, 110.7, 60.0),
            (4, 1, 2, 1.090, 110.7, -60.0),
            (3, 1, 2, 1.410, 109.5, 180.0),  # O-C-C-O trans: the published V1 of 12.2 kcal/mol
            (4, 1, 2, 1.410, 109.5, 180.0),
            (11, 3, 1, 0.945, 108.5, 180.0),
            (12, 4, 1, 0.945, 108.5, 180.0),
        ],
    },
}


def lookup(table: dict, key: tuple):
    """Parameters of a type tuple, read in either direction."""
    if key in table:
        return table[key]
    if key[::-1] in table:
        return table[key[::-1]]
    raise KeyError(f"no OPLS-DES parameters for {'-'.join(key)}")


def graph_terms(n_atoms: int, bonds: list[tuple[int, int]]):
    """Angles, proper dihedrals and 1-4 pairs (1-based) enumerated from the bond graph."""
    nbr = {i: set() for i in range(1, n_atoms + 1)}
    for a, b in bonds:
        nbr[a].add(b)
        nbr[b].add(a)
    angles = [(a, j, c) for j in nbr for a, c in itertools.combinations(sorted(nbr[j]), 2)]
    dihedrals = []
    for j, k in bonds:
        for i in sorted(nbr[j] - {k}):
            for l in sorted(nbr[k] - {j}):
                if i != l:
                    dihedrals.append((i, j, k, l))
    close = {frozenset(b) for b in bonds} | {frozenset((a, c)) for a, _, c in angles}
    pairs = sorted({tuple(sorted((d[0], d[3]))) for d in dihedrals if frozenset((d[0], d[3])) not in close})
    return angles, dihedrals, pairs


def place(zm: list, n: int) -> np.ndarray:
    """Cartesian coordinates (Angstrom) from a z-matrix."""
    x = np.zeros((n, 3))
    for i, row in enumerate(zm):
        if row is None:
            continue
        a, b, c, r, theta, phi = row
        a -= 1
        if b is None:
            x[i] = x[a] + [r, 0.0, 0.0]
            continue
        b -= 1
        if c is None:
            u = (x[b] - x[a]) / np.linalg.norm(x[b] - x[a])
            perp = np.cross(u, [0.0, 0.0, 1.0])
            perp /= np.linalg.norm(perp)
            t = np.radians(theta)
            x[i] = x[a] + r * (np.cos(t) * u + np.sin(t) * np.cross(perp, u))
            continue
        c -= 1
        bc = x[b] - x[c]
        ab = x[a] - x[b]
        n_ = np.cross(bc, ab)
        n_ /= np.linalg.norm(n_)
        ab /= np.linalg.norm(ab)
        m = np.cross(n_, ab)
        t, p = np.radians(theta), np.radians(phi)
        d = np.array([-r * np.cos(t), r * np.sin(t) * np.cos(p), r * np.sin(t) * np.sin(p)])
        x[i] = x[a] + d[0] * ab + d[1] * m + d[2] * n_
    return x - x.mean(axis=0)


def write_forcefield(path: Path) -> None:
    lines = [CITATION, "[ defaults ]", "; nbfunc comb-rule gen-pairs fudgeLJ fudgeQQ",
             "  1       3         yes       0.5     0.5", "", "[ atomtypes ]",
             "; name  mass      charge  ptype  sigma(nm)  epsilon(kJ/mol)"]
    for name, (mass, sigma, eps) in ATOM_TYPES.items():
        lines.append(f"  {name:<4} {mass:9.4f}  0.000   A      {sigma / 10:.5f}    {eps * KCAL_TO_KJ:.6f}")
    path.write_text("\n".join(lines) + "\n")


def write_molecule(resname: str, mol: dict, itp: Path, pdb: Path) -> None:
    atoms = mol["atoms"]
    angles, dihedrals, pairs = graph_terms(len(atoms), mol["bonds"])
    types = {i + 1: a[1] for i, a in enumerate(atoms)}
    out = [CITATION, "[ moleculetype ]", "; name  nrexcl", f"  {resname}  3", "", "[ atoms ]",
           ";  nr  type  resnr  res   atom  cgnr  charge(e)  mass(amu)"]
    for i, (name, typ, q) in enumerate(atoms, start=1):
        out.append(f"  {i:3d}  {typ:<4}  1  {resname:<5} {name:<4} {i:3d}  {q:8.4f}  {ATOM_TYPES[typ][0]:8.4f}")
    if mol["bonds"]:
        out += ["", "[ bonds ]", ";  ai  aj  funct  b0(nm)  kb(kJ/mol/nm^2)"]
        for a, b in mol["bonds"]:
            r0, k = lookup(BONDS, (types[a], types[b]))
            # OPLS E = k (r-r0)^2 ; GROMACS E = kb/2 (r-r0)^2 with nm
            out.append(f"  {a:3d} {b:3d}  1  {r0 / 10:.5f}  {2 * k * KCAL_TO_KJ * 100:.1f}")
    if pairs:
        out += ["", "[ pairs ]", ";  ai  aj  funct"]
        out += [f"  {a:3d} {b:3d}  1" for a, b in pairs]
    if angles:
        out += ["", "[ angles ]", ";  ai  aj  ak  funct  theta0(deg)  k(kJ/mol/rad^2)"]
        for a, j, c in angles:
            th, k = lookup(ANGLES, (types[a], types[j], types[c]))
            out.append(f"  {a:3d} {j:3d} {c:3d}  1  {th:.2f}  {2 * k * KCAL_TO_KJ:.4f}")
    if dihedrals or mol["impropers"]:
        out += ["", "[ dihedrals ]", ";  ai  aj  ak  al  funct  V1..V4 (kJ/mol, Fourier)"]
        for d in dihedrals:
            v = lookup(DIHEDRALS, tuple(types[i] for i in d))
            if not any(v):
                continue
            out.append(f"  {d[0]:3d} {d[1]:3d} {d[2]:3d} {d[3]:3d}  5  " + "  ".join(f"{x * KCAL_TO_KJ:.5f}" for x in v))
        out.append("; impropers")
        for d, v in mol["impropers"]:
            out.append(f"  {d[0]:3d} {d[1]:3d} {d[2]:3d} {d[3]:3d}  5  " + "  ".join(f"{x * KCAL_TO_KJ:.5f}" for x in v))
    if mol.get("exclusions"):
        out += ["", "[ exclusions ]", ";  ai  aj"]
        out += [f"  {a:3d} {b:3d}" for a, b in mol["exclusions"]]
    itp.write_text("\n".join(out) + "\n")

    xyz = place(mol["zmatrix"], len(atoms))
    rows = ["REMARK   kdcg " + resname + " built from OPLS-DES equilibrium geometry"]
    for i, ((name, typ, _), r) in enumerate(zip(atoms, xyz), start=1):
        element = "Cl" if typ == "Cl" else typ[0]
        rows.append(f"HETATM{i:5d} {name:<4} {resname:<4}A   1    {r[0]:8.3f}{r[1]:8.3f}{r[2]:8.3f}  1.00  0.00          {element:>2}")
    rows.append("END")
    pdb.write_text("\n".join(rows) + "\n")


def main() -> None:
    write_forcefield(HERE / "forcefield.itp")
    for resname, mol in MOLECULES.items():
        write_molecule(resname, mol, HERE / f"{mol['file']}.itp", HERE / f"{mol['file']}.pdb")


if __name__ == "__main__":
    main()

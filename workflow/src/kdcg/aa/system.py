"""Stage 1a: the all-atom system -- GROMACS topology and a Packmol box.

Every molecule kind comes from config: an .itp with one [ moleculetype ] and a PDB of one
molecule whose atoms match it one to one.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kdcg.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Molecule:
    species: str
    resname: str
    count: int
    itp: Path
    structure: Path
    atom_names: tuple[str, ...]
    masses_amu: tuple[float, ...]


def _itp_sections(path: Path) -> dict[str, list[list[str]]]:
    """Rows of each [ section ] of an .itp, comments stripped."""
    sections: dict[str, list[list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[\s*(\w+)\s*\]", line)
        if m:
            current = m.group(1).lower()
            sections.setdefault(current, [])
        elif current is not None:
            sections[current].append(line.split())
    return sections


def _pdb_atom_names(path: Path) -> list[str]:
    names = [line[12:16].strip() for line in path.read_text().splitlines() if line.startswith(("ATOM", "HETATM"))]
    if not names:
        raise InputError(path, "no ATOM/HETATM records: not a PDB structure")
    return names


def _pdb_residue_names(path: Path) -> list[str]:
    return [line[17:21].strip() for line in path.read_text().splitlines() if line.startswith(("ATOM", "HETATM"))]


def bonded_groups(n_atoms: int, sections: dict[str, list[list[str]]]) -> list[list[int]]:
    """The molecule's atoms (1-based) grouped by what bonds, constraints and settles join."""
    parent = list(range(n_atoms + 1))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    links = [(int(r[0]), int(r[1])) for key in ("bonds", "constraints") for r in sections.get(key, [])]
    links += [(int(r[0]), int(r[0]) + k) for r in sections.get("settles", []) for k in (1, 2)]
    for a, b in links:
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for a in range(1, n_atoms + 1):
        groups.setdefault(root(a), []).append(a)
    return list(groups.values())


def read_molecule(entry: dict, root: Path = Path(".")) -> Molecule:
    """One config molecule entry, checked against its .itp and PDB."""
    itp, pdb = root / entry["itp"], root / entry["structure"]
    for path in (itp, pdb):
        if not path.is_file():
            raise InputError(path, f"file of molecule '{entry['species']}' not found")
    sections = _itp_sections(itp)
    types = sections.get("moleculetype", [])
    if len(types) != 1:
        raise InputError(itp, f"expected exactly one [ moleculetype ], found {len(types)}")
    if types[0][0] != entry["resname"]:
        raise InputError(itp, f"moleculetype is '{types[0][0]}' but config says resname '{entry['resname']}'")
    atoms = sections.get("atoms", [])
    if not atoms:
        raise InputError(itp, "no [ atoms ] section")
    itp_names = [row[4] for row in atoms]
    masses = [float(row[7]) for row in atoms]
    pdb_names = _pdb_atom_names(pdb)
    if len(pdb_names) != len(itp_names):
        raise InputError(pdb, f"{len(pdb_names)} atoms but {itp.name} defines {len(itp_names)} (atoms missing?)")
    if pdb_names != itp_names:
        bad = next(i for i, (a, b) in enumerate(zip(pdb_names, itp_names)) if a != b)
        raise InputError(pdb, f"atom {bad + 1} is '{pdb_names[bad]}' but {itp.name} names it '{itp_names[bad]}'")
    others = sorted(set(_pdb_residue_names(pdb)) - {entry["resname"]})
    if others:
        raise InputError(pdb, f"no residue {entry['resname']} for species '{entry['species']}': the structure's residues"
                              f" are named {others} (the residue name must be the .itp's [ moleculetype ])")
    groups = bonded_groups(len(itp_names), sections)
    if len(groups) > 1:
        shown = " | ".join(" ".join(itp_names[a - 1] for a in g[:6]) + (" ..." if len(g) > 6 else "") for g in groups[:4])
        raise InputError(itp, f"molecule {entry['resname']} cannot be one bead: its atoms form {len(groups)} groups that"
                              f" no bond joins ({shown}); kdcg finds a molecule's atoms through its [ bonds ],"
                              f" so add the missing bond or make each group its own molecule")
    return Molecule(entry["species"], entry["resname"], int(entry["count"]), itp, pdb, tuple(itp_names), tuple(masses))


def read_molecules(config: dict, root: Path = Path(".")) -> list[Molecule]:
    return [read_molecule(entry, root) for entry in config["system"]["molecules"]]


def _atom_type_names(path: Path, seen: set[Path] | None = None) -> set[str] | None:
    """The [ atomtypes ] names an .itp defines, through its #include lines; None when an include
    cannot be found here (a GROMACS library file): then nothing is known to be missing."""
    seen = seen if seen is not None else set()
    if path in seen:
        return set()
    seen.add(path)
    names = {row[0] for row in _itp_sections(path).get("atomtypes", [])}
    for raw in path.read_text().splitlines():
        m = re.match(r'\s*#include\s+"([^"]+)"', raw)
        if m:
            included = path.parent / m.group(1)
            if not included.is_file():
                return None
            more = _atom_type_names(included, seen)
            if more is None:
                return None
            names |= more
    return names


def check_atom_types(forcefield: Path, molecules: list[Molecule]) -> None:
    """Every atom of every molecule has a type that the force field (or the molecule's own
    [ atomtypes ]) defines: grompp's own message would name only the topology line."""
    known = _atom_type_names(forcefield)
    if known is None:
        return
    for mol in molecules:
        own = _atom_type_names(mol.itp)
        if own is None:
            continue
        for i, row in enumerate(_itp_sections(mol.itp)["atoms"], start=1):
            if row[1] not in known | own:
                raise InputError(mol.itp, f"atom {i} ({row[4]}) has type '{row[1]}', which the force field"
                                          f" {forcefield} does not define in its [ atomtypes ]")


# van der Waals radii (A) of Bondi, J. Phys. Chem. 1964, 68, 441, by element; the element of an
# atom from its .itp mass (amu, standard atomic weights)
BONDI_RADII_A = {"H": 1.20, "C": 1.70, "N": 1.55, "O": 1.52, "F": 1.47, "P": 1.80, "S": 1.80, "Cl": 1.75,
                 "Br": 1.85, "I": 1.98, "Na": 2.27, "K": 2.75}
ELEMENT_MASSES_AMU = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "F": 18.998, "Na": 22.990, "P": 30.974,
                      "S": 32.06, "Cl": 35.45, "K": 39.098, "Br": 79.904, "I": 126.904}
AVOGADRO = 6.02214076e23
#: the largest fraction of a box the molecules' van der Waals volumes may fill; liquids at room
#: temperature fill about 0.5-0.7 of it (reline 0.68: hydrogen bonds pull atoms inside each other's radii),
#: and 0.85 is a liquid compressed by a quarter: a box fuller than this is a typing error
MAX_PACKING_FRACTION = 0.85


def _element(mass_amu: float) -> str | None:
    name, ref = min(ELEMENT_MASSES_AMU.items(), key=lambda item: abs(item[1] - mass_amu))
    return name if abs(ref - mass_amu) < 0.1 else None


def _pdb_coordinates(path: Path) -> list[tuple[float, float, float]]:
    return [(float(line[30:38]), float(line[38:46]), float(line[46:54]))
            for line in path.read_text().splitlines() if line.startswith(("ATOM", "HETATM"))]


@functools.lru_cache(maxsize=None)
def vdw_volume_A3(molecule: Molecule, spacing_A: float = 0.2) -> float | None:
    """The molecule's van der Waals volume (A^3): the union of its atoms' Bondi spheres, counted
    on a grid of ``spacing_A``; None when an atom's mass names no element with a known radius."""
    import numpy as np

    radii = []
    for mass in molecule.masses_amu:
        element = _element(mass)
        if element is None:
            return None
        radii.append(BONDI_RADII_A[element])
    xyz, radii = np.asarray(_pdb_coordinates(molecule.structure)), np.asarray(radii)
    lo, hi = (xyz - radii[:, None]).min(axis=0), (xyz + radii[:, None]).max(axis=0)
    axes = [np.arange(a + spacing_A / 2, b, spacing_A) for a, b in zip(lo, hi)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = np.zeros(len(grid), dtype=bool)
    for centre, r in zip(xyz, radii):
        inside |= ((grid - centre) ** 2).sum(axis=1) <= r * r
    return float(inside.sum()) * spacing_A ** 3


def check_box_fits(config: dict, molecules: list[Molecule], source) -> None:
    """Refuse a composition whose molecules cannot fit the box: the sum of their van der Waals
    volumes against the box's volume (MAX_PACKING_FRACTION), with the numbers; before Packmol
    would search for hours."""
    edge = config["system"]["box_edge_A"]
    box_A3 = edge ** 3
    volumes = [vdw_volume_A3(m) for m in molecules]
    mass_g = sum(m.count * sum(m.masses_amu) for m in molecules) / AVOGADRO
    density = mass_g / (box_A3 * 1e-24)
    if any(v is None for v in volumes):
        return  # an element without a radius: Packmol's own failure will name the box
    filled = sum(m.count * v for m, v in zip(molecules, volumes))
    if filled > MAX_PACKING_FRACTION * box_A3:
        parts = ", ".join(f"{m.count} {m.species} x {v:.0f} A^3" for m, v in zip(molecules, volumes))
        raise InputError(source, f"config key 'system.molecules': the molecules cannot fit the box: their van der Waals"
                                 f" volumes ({parts}) add up to {filled:.3g} A^3, {filled / box_A3:.3g} of the"
                                 f" {box_A3:.4g} A^3 box (system.box_edge_A = {edge} A; liquids fill about 0.5-0.7,"
                                 f" at most {MAX_PACKING_FRACTION} is accepted); mass density {density:.3g} g/cm^3")


def write_topology(config: dict, out_top: Path, root: Path = Path(".")) -> Path:
    """topol.top beside copies of the force field and molecule .itp files."""
    molecules = read_molecules(config, root)
    out_top = Path(out_top)
    toppar = out_top.parent / "toppar"
    toppar.mkdir(parents=True, exist_ok=True)
    ff = root / config["system"]["forcefield"]
    if not ff.is_file():
        raise InputError(ff, "force field file not found")
    check_atom_types(ff, molecules)
    shutil.copyfile(ff, toppar / ff.name)
    lines = [f"; kdcg topology of {config['system']['name']}", f'#include "toppar/{ff.name}"', ""]
    for mol in molecules:
        text = mol.itp.read_text()
        if not config["system"]["pairs_14"]:
            text = without_section(text, "pairs")
        (toppar / mol.itp.name).write_text(text)
        lines.append(f'#include "toppar/{mol.itp.name}"')
    lines += ["", "[ system ]", config["system"]["name"], "", "[ molecules ]"]
    lines += [f"{mol.resname:<6} {mol.count}" for mol in molecules]
    out_top.write_text("\n".join(lines) + "\n")
    return out_top


def without_section(itp_text: str, section: str) -> str:
    """An .itp without one [ section ] (its header and rows, up to the next section)."""
    out, skipping = [], False
    for line in itp_text.splitlines(keepends=True):
        m = re.match(r"\s*\[\s*(\w+)\s*\]", line)
        if m:
            skipping = m.group(1).lower() == section
            if skipping:
                out.append(f"; the {section} section is left out: config key system.pairs_14 is false\n")
                continue
        if not skipping:
            out.append(line)
    return "".join(out)


def packmol_input(config: dict, out_pdb: Path, root: Path = Path(".")) -> str:
    """Packmol input: molecules inside the cube, kept tolerance/2 from its faces so that no
    pair is closer than the tolerance across the periodic boundary either."""
    edge = config["system"]["box_edge_A"]
    tol = config["packmol"]["tolerance_A"]
    lo, hi = tol / 2.0, edge - tol / 2.0
    lines = [
        f"tolerance {tol}",
        "filetype pdb",
        f"output {Path(out_pdb).resolve()}",
        f"seed {config['packmol']['seed']}",
        "",
    ]
    for mol in read_molecules(config, root):
        lines += [
            f"structure {mol.structure.resolve()}",
            f"  number {mol.count}",
            f"  inside box {lo:.4f} {lo:.4f} {lo:.4f} {hi:.4f} {hi:.4f} {hi:.4f}",
            "end structure",
            "",
        ]
    return "\n".join(lines)


def pack_box(config: dict, out_gro: Path, root: Path = Path("."), packmol: str = "packmol") -> Path:
    """Run Packmol and write the box as .gro with the exact cubic box (nm)."""
    out_gro = Path(out_gro)
    out_gro.parent.mkdir(parents=True, exist_ok=True)
    raw_pdb = out_gro.with_suffix(".packmol.pdb")
    inp = packmol_input(config, raw_pdb, root)
    inp_path = out_gro.with_suffix(".packmol.inp")
    inp_path.write_text(inp)
    if shutil.which(packmol) is None:
        raise InputError(None, f"'{packmol}' not found on PATH: install Debian's packmol (apt-get install packmol)")
    log.info("packmol: %d molecule kinds in a %.3f A cube", len(config["system"]["molecules"]), config["system"]["box_edge_A"])
    with open(inp_path) as stdin:
        proc = subprocess.run([packmol], stdin=stdin, capture_output=True, text=True)
    log.info("packmol output:\n%s", proc.stdout[-4000:])
    if proc.returncode != 0 or "Success!" not in proc.stdout or not raw_pdb.is_file():
        # a composition too dense for packmol.tolerance_A, mostly: the config's to change
        raise InputError(inp_path, f"packmol found no packing (exit {proc.returncode}; its last lines in the log):"
                                   f" a larger system.box_edge_A or a smaller packmol.tolerance_A may fit;"
                                   f" {' '.join(proc.stdout.split()[-40:])}")
    molecules = read_molecules(config, root)
    pdb_to_gro(raw_pdb, out_gro, config["system"]["box_edge_A"], molecules)
    return out_gro


def pdb_to_gro(pdb: Path, gro: Path, edge_A: float, molecules: list[Molecule]) -> None:
    """Packmol writes molecules in input order; name residues and atoms from the topology."""
    coords = []
    for line in Path(pdb).read_text().splitlines():
        if line.startswith(("ATOM", "HETATM")):
            coords.append((float(line[30:38]), float(line[38:46]), float(line[46:54])))
    expected = sum(m.count * len(m.atom_names) for m in molecules)
    if len(coords) != expected:
        raise InputError(pdb, f"{len(coords)} atoms, expected {expected} from the composition")
    out = ["kdcg packmol box", f"{expected:d}"]
    atom, resid = 0, 0
    for mol in molecules:
        for _ in range(mol.count):
            resid += 1
            for name in mol.atom_names:
                x, y, z = (c / 10.0 for c in coords[atom])
                atom += 1
                out.append(f"{resid % 100000:5d}{mol.resname:<5}{name:>5}{atom % 100000:5d}{x:8.3f}{y:8.3f}{z:8.3f}")
    L = edge_A / 10.0
    out.append(f"{L:10.5f}{L:10.5f}{L:10.5f}")
    Path(gro).write_text("\n".join(out) + "\n")

"""Stage 2: map an all-atom trajectory onto one CG bead per molecule.

Bead position = centre of mass of the molecule, made whole across the periodic boundary
first (along its bonds) and then wrapped into the box. Bead force = sum of the molecule's
atomic forces (the force map consistent with a centre-of-mass coordinate map). Bead mass =
molecule mass. Units are converted once, to Angstrom and kcal/mol/Angstrom.

The dataset is an NPZ whose array names hippynn's databases take directly:
``R`` positions (frames, beads, 3) A, ``F`` forces (frames, beads, 3) kcal/mol/A,
``Z`` species index (frames, beads), 1-based because hippynn reserves 0 for padding,
``cell`` box vectors (frames, 3, 3) A, plus ``masses`` amu, ``time_ps``, ``species_names``,
``bead_resid``, ``units`` and ``source`` (JSON).
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from kdcg.errors import InputError
from kdcg.units import DATASET_UNITS, KJ_MOL_A_TO_KCAL_MOL_A

log = logging.getLogger(__name__)


@dataclass
class BeadMap:
    """How atoms become beads: one bead per molecule (bond-connected fragment)."""

    n_atoms: int
    bead_of_atom: np.ndarray  # (n_atoms,) bead index of every atom
    parent: np.ndarray  # (n_atoms,) bonded atom a molecule is grown from; -1 for each root
    depth: np.ndarray  # (n_atoms,) bond distance from the root
    atom_masses: np.ndarray  # (n_atoms,) amu
    bead_species: np.ndarray  # (n_beads,) 1-based species index
    species_names: list[str]
    bead_resnames: list[str]
    bead_resids: np.ndarray

    @property
    def n_beads(self) -> int:
        return len(self.bead_species)

    @property
    def bead_masses(self) -> np.ndarray:
        return np.bincount(self.bead_of_atom, weights=self.atom_masses, minlength=self.n_beads)

    def com_matrix(self) -> sp.csr_matrix:
        """(beads, atoms) matrix of m_i / M_I: positions of whole molecules -> COM."""
        w = self.atom_masses / self.bead_masses[self.bead_of_atom]
        return sp.csr_matrix((w, (self.bead_of_atom, np.arange(self.n_atoms))), shape=(self.n_beads, self.n_atoms))

    def sum_matrix(self) -> sp.csr_matrix:
        """(beads, atoms) matrix of ones: atomic forces -> bead force."""
        return sp.csr_matrix((np.ones(self.n_atoms), (self.bead_of_atom, np.arange(self.n_atoms))), shape=(self.n_beads, self.n_atoms))


def build_bead_map(n_atoms: int, molecules: list[np.ndarray], bonds: np.ndarray, masses: np.ndarray,
                   resnames: list[str], resids: np.ndarray, species_of_resname: dict[str, str] | None = None) -> BeadMap:
    """Bead map from molecule atom lists and the bond list (pairs of atom indices)."""
    species_of_resname = species_of_resname or {}
    bead_of_atom = np.full(n_atoms, -1, dtype=np.int64)
    for b, atoms in enumerate(molecules):
        bead_of_atom[atoms] = b
    if (bead_of_atom < 0).any():
        raise ValueError(f"atoms {np.flatnonzero(bead_of_atom < 0)[:5].tolist()} belong to no molecule")
    neighbours: list[list[int]] = [[] for _ in range(n_atoms)]
    for i, j in np.asarray(bonds, dtype=np.int64).reshape(-1, 2):
        neighbours[i].append(j)
        neighbours[j].append(i)
    parent = np.full(n_atoms, -1, dtype=np.int64)
    depth = np.zeros(n_atoms, dtype=np.int64)
    for atoms in molecules:
        root = int(atoms[0])
        seen = {root}
        queue = deque([root])
        while queue:  # breadth first: each atom's parent is placed before it
            a = queue.popleft()
            for nb in neighbours[a]:
                if nb not in seen:
                    seen.add(nb)
                    parent[nb], depth[nb] = a, depth[a] + 1
                    queue.append(nb)
    names = [species_of_resname.get(r, r) for r in resnames]
    species_names = list(dict.fromkeys(names))
    bead_species = np.array([species_names.index(n) + 1 for n in names], dtype=np.int64)
    return BeadMap(n_atoms, bead_of_atom, parent, depth, np.asarray(masses, dtype=np.float64), bead_species,
                   species_names, list(resnames), np.asarray(resids))


def orthorhombic_edges(dimensions: np.ndarray, where: str) -> np.ndarray:
    """Box edge lengths (A) from MDAnalysis dimensions [a, b, c, alpha, beta, gamma]."""
    if dimensions is None:
        raise InputError(where, "frame has no periodic box")
    dims = np.asarray(dimensions, dtype=np.float64)
    if not np.allclose(dims[3:], 90.0, atol=1e-3):
        raise InputError(where, f"box angles {dims[3:].tolist()} are not 90 degrees: only orthorhombic boxes are supported")
    if (dims[:3] <= 0).any():
        raise InputError(where, f"box edges {dims[:3].tolist()} are not positive")
    return dims[:3]


def make_whole(x: np.ndarray, edges: np.ndarray, bead_map: BeadMap) -> np.ndarray:
    """Positions (A) with every molecule whole: each atom placed at the minimum image of its
    bond to its parent atom, roots first."""
    x = np.array(x, dtype=np.float64)
    for d in range(1, int(bead_map.depth.max(initial=0)) + 1):
        atoms = np.flatnonzero(bead_map.depth == d)
        delta = x[atoms] - x[bead_map.parent[atoms]]
        delta -= edges * np.round(delta / edges)
        x[atoms] = x[bead_map.parent[atoms]] + delta
    return x


def map_positions(x_whole: np.ndarray, edges: np.ndarray, com: sp.csr_matrix) -> np.ndarray:
    """Bead centres of mass (A), wrapped into [0, edge)."""
    r = com @ x_whole
    return r - edges * np.floor(r / edges)


def map_forces(f: np.ndarray, summ: sp.csr_matrix) -> np.ndarray:
    """Bead forces: the sum of the atomic forces of each molecule (same units as f)."""
    return summ @ f


def molecule_extent(x_whole: np.ndarray, bead_map: BeadMap) -> np.ndarray:
    """(beads, 3) extent (max - min) of each whole molecule along each axis, A."""
    n = bead_map.n_beads
    lo = np.full((n, 3), np.inf)
    hi = np.full((n, 3), -np.inf)
    np.minimum.at(lo, bead_map.bead_of_atom, x_whole)
    np.maximum.at(hi, bead_map.bead_of_atom, x_whole)
    return hi - lo


def check_frame(f: np.ndarray, x_whole: np.ndarray, edges: np.ndarray, bead_map: BeadMap, where: str, frame: int) -> None:
    bad = ~np.isfinite(f)
    if bad.any():
        atom = int(np.flatnonzero(bad.any(axis=1))[0])
        raise InputError(where, f"frame {frame}: non-finite force (NaN or infinite) on atom {atom + 1} "
                                f"({int(bad.any(axis=1).sum())} atoms affected)")
    extent = molecule_extent(x_whole, bead_map)
    wide = extent > 0.5 * edges
    if wide.any():
        bead = int(np.flatnonzero(wide.any(axis=1))[0])
        raise InputError(where, f"frame {frame}: molecule {bead + 1} ({bead_map.bead_resnames[bead]}) is wider than half the box "
                                f"({extent[bead].max():.2f} A > {0.5 * edges.min():.2f} A)")


def bead_map_from_universe(u, species_of_resname: dict[str, str] | None = None, where: str = "topology") -> BeadMap:
    """One bead per molecule, a molecule being a bonded fragment that is exactly one residue."""
    molecules = [frag.indices for frag in u.atoms.fragments]
    # fragments come sorted by their first atom; keep that order as the bead order
    order = np.argsort([m[0] for m in molecules])
    molecules = [molecules[i] for i in order]
    resindices = u.atoms.resindices
    for m in molecules:
        spanned = np.unique(resindices[m])
        if len(spanned) > 1:
            res = u.residues[spanned[:3]]
            raise InputError(where, f"a bonded molecule spans {len(spanned)} residues ("
                                    + ", ".join(f"{r.resname} {r.resid}" for r in res)
                                    + "): kdcg maps one residue, bonded together, to one bead")
    if len(molecules) != len(u.residues):
        pieces = np.bincount([resindices[m[0]] for m in molecules], minlength=len(u.residues))
        split = u.residues[int(np.argmax(pieces))]
        raise InputError(where, f"residue {split.resname} {split.resid} falls into {pieces.max()} pieces that no bond"
                                " joins: kdcg maps a molecule to one bead through its bonds")
    resnames = [u.atoms[m[0]].resname for m in molecules]
    if species_of_resname:
        absent = sorted(set(species_of_resname) - set(resnames))
        if absent:
            raise InputError(where, "no residue named " + ", ".join(f"{r} (species {species_of_resname[r]})" for r in absent)
                                    + f": the topology's residues are {sorted(set(resnames))}")
        unnamed = sorted(set(resnames) - set(species_of_resname))
        if unnamed:
            raise InputError(where, f"residues {unnamed} have no species: name one for each (RESNAME=species)")
    resids = np.array([u.atoms[m[0]].resid for m in molecules])
    bonds = u.bonds.indices if len(u.bonds) else np.zeros((0, 2), dtype=np.int64)
    return build_bead_map(u.atoms.n_atoms, molecules, bonds, u.atoms.masses, resnames, resids, species_of_resname)


def open_universe(topology: Path, trajectory: Path):
    import MDAnalysis as mda

    for p in (topology, trajectory):
        if not Path(p).is_file():
            raise InputError(p, "file not found")
    try:
        u = mda.Universe(str(topology), str(trajectory))
    except ValueError as err:
        if "same number of atoms" in str(err) or "atoms" in str(err):
            raise InputError(trajectory, f"atom count does not match the topology {topology}: {err}") from None
        raise InputError(trajectory, f"cannot be read with topology {topology}: {err}") from None
    except Exception as err:  # MDAnalysis raises many kinds for unreadable files
        raise InputError(trajectory, f"cannot be read with topology {topology}: {type(err).__name__}: {err}") from None
    if not hasattr(u, "bonds"):
        raise InputError(topology, "topology has no bonds: molecules cannot be identified (use a GROMACS .tpr)")
    return u


def map_trajectory(topology: Path, trajectory: Path, out_npz: Path,
                   species_of_resname: dict[str, str] | None = None, stride: int = 1) -> dict:
    """Map a whole trajectory to the CG dataset NPZ; return a summary dict."""
    topology, trajectory, out_npz = Path(topology), Path(trajectory), Path(out_npz)
    u = open_universe(topology, trajectory)
    bead_map = bead_map_from_universe(u, species_of_resname, str(topology))
    com, summ = bead_map.com_matrix(), bead_map.sum_matrix()
    n_frames = len(u.trajectory[::stride])
    R = np.empty((n_frames, bead_map.n_beads, 3), dtype=np.float32)
    F = np.empty_like(R)
    cell = np.zeros((n_frames, 3, 3), dtype=np.float32)
    time_ps = np.empty(n_frames)
    log.info("mapping %d frames: %d atoms -> %d beads (%s)", n_frames, bead_map.n_atoms, bead_map.n_beads,
             ", ".join(f"{n}: {int((bead_map.bead_species == i + 1).sum())}" for i, n in enumerate(bead_map.species_names)))
    report_every = max(1, n_frames // 10)
    for k, ts in enumerate(u.trajectory[::stride]):
        if not ts.has_forces:
            raise InputError(trajectory, f"frame {ts.frame} has no forces: write them in production (nstfout > 0)")
        edges = orthorhombic_edges(ts.dimensions, str(trajectory))
        x_whole = make_whole(ts.positions, edges, bead_map)
        f_kcal = ts.forces.astype(np.float64) * KJ_MOL_A_TO_KCAL_MOL_A  # MDAnalysis gives kJ/mol/A
        check_frame(f_kcal, x_whole, edges, bead_map, str(trajectory), ts.frame)
        R[k] = map_positions(x_whole, edges, com)
        F[k] = map_forces(f_kcal, summ)
        cell[k] = np.diag(edges)
        time_ps[k] = ts.time
        if (k + 1) % report_every == 0 or k + 1 == n_frames:
            log.info("mapped frame %d/%d (t = %.1f ps)", k + 1, n_frames, ts.time)
    if n_frames == 0:
        raise InputError(trajectory, "trajectory has no frames")
    source = {"topology": str(topology), "trajectory": str(trajectory), "stride": stride,
              "n_atoms": int(bead_map.n_atoms), "mapping": "one bead per molecule: COM position, summed force"}
    out_npz.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_npz.with_name(out_npz.name + ".tmp.npz")
    np.savez(tmp, R=R, F=F, Z=np.broadcast_to(bead_map.bead_species, (n_frames, bead_map.n_beads)).copy(),
             cell=cell, masses=bead_map.bead_masses, time_ps=time_ps,
             species_names=np.array(bead_map.species_names), bead_resid=bead_map.bead_resids,
             bead_resname=np.array(bead_map.bead_resnames), units=json.dumps(DATASET_UNITS), source=json.dumps(source))
    os.replace(tmp, out_npz)  # never leave a half-written dataset behind
    summary = {"frames": n_frames, "beads": bead_map.n_beads, "species": bead_map.species_names,
               "mean_abs_force_kcal_mol_A": float(np.abs(F).mean()), "out": str(out_npz)}
    log.info("dataset written: %s", json.dumps(summary))
    return summary


def load_dataset(path: Path) -> dict:
    """The dataset as a dict of arrays, with units and source decoded, checked for sanity.
    ``_path`` records where it was read from (kdcg.provenance names it in messages)."""
    from kdcg.files import read_npz

    path = Path(path)
    data = read_npz(path, "dataset")
    missing = {"R", "F", "Z", "cell", "masses", "species_names", "units"} - set(data)
    if missing:
        raise InputError(path, f"not a kdcg dataset: arrays {sorted(missing)} missing")
    try:
        data["units"] = json.loads(str(data["units"]))
    except json.JSONDecodeError:
        raise InputError(path, "not a kdcg dataset: its 'units' entry is not JSON") from None
    if data["units"] != DATASET_UNITS:
        raise InputError(path, f"units {data['units']} are not kdcg's {DATASET_UNITS}")
    if "source" in data:
        data["source"] = json.loads(str(data["source"]))
    R, F, Z, cell = data["R"], data["F"], data["Z"], data["cell"]
    if R.ndim != 3 or R.shape[-1] != 3 or F.shape != R.shape or Z.shape != R.shape[:2] or cell.shape != (len(R), 3, 3):
        raise InputError(path, f"not a kdcg dataset: array shapes disagree (R {R.shape}, F {F.shape}, Z {Z.shape}, "
                               f"cell {cell.shape})")
    data["_path"] = str(path)
    return data

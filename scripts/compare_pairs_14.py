"""What system.pairs_14 changes: choline's N-C-C-O dihedral, and the mapped CG data.

Compares two finished all-atom runs of the same config that differ only in ``system.pairs_14``
(same Packmol box and velocity seeds). Prints the gauche fraction of choline's N1-C1-C2-O1
dihedral (|phi| < 120 deg) and its mean |phi| over the production frames, the mean absolute
mapped bead force, and the TAE between the two runs' CG RDFs next to each run's own sampling
noise (first vs second half of its frames).

    python scripts/compare_pairs_14.py results results-pairs14
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "src"))


def dihedrals(results: Path) -> np.ndarray:
    import MDAnalysis as mda
    from MDAnalysis.analysis.dihedrals import Dihedral

    u = mda.Universe(str(results / "aa/nvt_prod/nvt_prod.tpr"), str(results / "aa/nvt_prod/nvt_prod.trr"))
    chol = u.select_atoms("resname CHOL").residues
    quads = [r.atoms.select_atoms("name N1 C1 C2 O1") for r in chol]
    quads = [q[[list(q.names).index(n) for n in ("N1", "C1", "C2", "O1")]] for q in quads]
    return Dihedral(quads).run().results.angles  # (frames, molecules), degrees


def rdf_tae(a: dict, b: dict) -> dict:
    from kdcg.cg import structure

    dr = a["grids"]["rdf"]["dr_A"]
    return {k: structure.tae(a["rdf"][k], b["rdf"][k], dr) for k in a["rdf"]}


def main(without: Path, with_pairs: Path) -> None:
    import yaml

    from kdcg.analysis.distributions import distributions
    from kdcg.cg.mapping import load_dataset

    acfg = yaml.safe_load((without / "config" / "analysis.yaml").read_text())["analysis"]
    dists = {}
    for label, results in (("pairs_14 false", without), ("pairs_14 true", with_pairs)):
        phi = np.abs(dihedrals(results))
        data = load_dataset(results / "cg" / "dataset.npz")
        n = len(data["R"])
        halves = [distributions(data["R"], data["cell"], data["Z"][0], data["species_names"], acfg,
                                quantities=("rdf",), used=sel) for sel in (np.arange(n) < n // 2, np.arange(n) >= n // 2)]
        dists[label] = distributions(data["R"], data["cell"], data["Z"][0], data["species_names"], acfg, quantities=("rdf",))
        noise = rdf_tae(*halves)
        print(f"{label}: {phi.shape[0]} frames x {phi.shape[1]} cholines; N-C-C-O gauche fraction "
              f"{(phi < 120).mean():.3f}, mean |phi| {phi.mean():.1f} deg; mean |F| mapped "
              f"{np.abs(data['F']).mean():.3f} kcal/mol/A; RDF TAE of its two halves: "
              + ", ".join(f"{k} {v:.2f}" for k, v in noise.items()))
    between = rdf_tae(dists["pairs_14 false"], dists["pairs_14 true"])
    print("RDF TAE between the two runs: " + ", ".join(f"{k} {v:.2f}" for k, v in between.items()))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

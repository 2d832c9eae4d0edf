"""Analysis speed of one replica (prints figures; asserts nothing).

100 frames of 1,000 beads at the paper's density (44.84 A box), the paper's analysis:
6 RDFs + 9 ADFs (3 triplets x 3 cutoffs) + 3 CDFs. Goal on 2 cores: <= 10 s. Then the RDF
part alone against MDAnalysis's InterRDF (6 pairs, same frames, same grid), side by side.

    .venv/bin/python benchmarks/analysis.py [--frames 100] [--config config/paper.yaml]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def frames(n_frames: int):
    import numpy as np
    from bench_helpers import reline_frame

    species, R0, cell = reline_frame()
    rng = np.random.default_rng(1)
    R = np.stack([(R0 + rng.normal(0, 0.6, R0.shape)) % cell[0, 0] for _ in range(n_frames)])
    return species, R, cell


def interrdf_s(species, R, cell, names, r_max, dr) -> float:
    import MDAnalysis as mda
    import numpy as np
    from MDAnalysis.analysis.rdf import InterRDF
    from MDAnalysis.coordinates.memory import MemoryReader

    u = mda.Universe.empty(len(species), n_residues=len(species), atom_resindex=np.arange(len(species)), trajectory=False)
    u.add_TopologyAttr("type", [names[s - 1] for s in species])
    dims = np.array([cell[0, 0], cell[1, 1], cell[2, 2], 90.0, 90.0, 90.0])
    u.load_new(R.astype(np.float32), format=MemoryReader, dimensions=np.tile(dims, (len(R), 1)))
    t0 = time.perf_counter()
    for i, a in enumerate(names):
        for b in names[i:]:
            ga, gb = u.select_atoms(f"type {a}"), u.select_atoms(f"type {b}")
            # same species: exclude self pairs (each atom its own residue)
            kw = {"exclusion_block": (1, 1)} if a == b else {}
            InterRDF(ga, gb, nbins=int(round(r_max / dr)), range=(0.0, r_max), **kw).run()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--config", default=str(REPO / "config" / "paper.yaml"))
    args = ap.parse_args()

    import yaml

    from kdcg.analysis import distributions as analysis

    acfg = yaml.safe_load(Path(args.config).read_text())["analysis"]
    names = ["Cho", "Cl", "urea"]
    species, R, cell = frames(args.frames)
    t0 = time.perf_counter()
    out = analysis.distributions(R, cell, species, names, acfg)
    full = time.perf_counter() - t0
    t0 = time.perf_counter()
    analysis.distributions(R, cell, species, names, acfg, quantities=("rdf",))
    ours_rdf = time.perf_counter() - t0
    r_max = len(out["grids"]["rdf"]["r_A"]) * acfg["rdf_dr_A"]
    theirs = interrdf_s(species, R, cell, names, r_max, acfg["rdf_dr_A"])
    print(f"{args.frames} frames x {len(species)} beads; {len(out['rdf'])} RDFs, {len(out['adf'])} ADFs, "
          f"{len(out['cdf'])} CDFs")
    print(f"full analysis (kdcg):          {full:7.2f} s  (goal <= 10 s)")
    print(f"RDFs only (kdcg, one pass):    {ours_rdf:7.2f} s")
    print(f"RDFs only (MDAnalysis InterRDF, 6 pairs): {theirs:7.2f} s")
    print(f"InterRDF / kdcg RDF time:      {theirs / ours_rdf:7.2f}")


if __name__ == "__main__":
    main()

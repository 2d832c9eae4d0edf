"""Cost of candidate CG networks on this machine (prints a table; asserts nothing).

For each candidate (hippynn network, features, sensitivities, cutoff), on a 200-bead frame at
reline density (the default and study box, 26.22 A) in one process, side by side:
  - ms per evaluation: energy + forces of one frame, pair search included (what one CG MD step
    of one replica pays in the model);
  - ms per training frame: forward, force loss, backward and optimiser step on a batch of 4
    frames, divided by 4 (what one epoch pays per training frame).
Both are medians of repeats, with random weights (the cost does not depend on them). Candidates
share one interaction layer and 3 atom layers (Table 1); the first row is the paper's model.

    .venv/bin/python benchmarks/network_cost.py [--threads 1] [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bench_helpers import device_description, median_ms  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

#: (network, features, sensitivities, soft max A, hard max A); the paper's model first
CANDIDATES = (
    ("HipnnQuad", 32, 20, 8.5, 10.0),
    ("HipnnQuad", 16, 10, 6.5, 8.0),
    ("HipnnVec", 16, 10, 6.5, 8.0),
    ("Hipnn", 32, 20, 8.5, 10.0),
    ("Hipnn", 16, 10, 6.5, 8.0),
    ("Hipnn", 16, 10, 5.5, 7.0),
    ("Hipnn", 8, 8, 5.5, 7.0),
)


def model_cfg(network: str, features: int, sensitivities: int, soft_max: float, hard_max: float) -> dict:
    return {"network": network, "n_features": features, "n_sensitivities": sensitivities, "n_interaction_layers": 1,
            "n_atom_layers": 3, "dist_soft_min_A": 3.0, "dist_soft_max_A": soft_max, "dist_hard_max_A": hard_max}


def measure(cfg: dict, species, R, cell, repeats: int) -> tuple[float, float]:
    import numpy as np
    import torch
    from hippynn.graphs import GraphModule

    from kdcg.models.model import build_model
    from kdcg.models.model_io import compute_device

    device = compute_device()
    prior = {"taper_A": [[3.0] * 3] * 3, "strength_kcal_mol_A": 5.0, "dr_A": 0.15, "fraction_at_taper": 0.05}
    torch.manual_seed(0)
    m = build_model(cfg, 3, prior)
    graph = GraphModule([m.species, m.positions, m.cells], [m.forces, m.energy]).to(device)

    def batch(b):
        return (torch.as_tensor(np.tile(species, (b, 1))).to(device),
                torch.as_tensor(np.tile(R, (b, 1, 1)), dtype=torch.float32).to(device),
                torch.as_tensor(np.tile(cell, (b, 1, 1)), dtype=torch.float32).to(device))

    one = batch(1)
    evaluation = median_ms(lambda: graph(*one), repeats)
    four = batch(4)
    opt = torch.optim.Adam(graph.parameters(), lr=1e-4)

    def train_step():
        opt.zero_grad()
        forces, _ = graph(*four)
        loss = (forces ** 2).mean().sqrt() + forces.abs().mean()
        loss.backward()
        opt.step()

    return evaluation, median_ms(train_step, max(3, repeats // 3)) / 4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one job per core)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--beads", type=int, default=216, help="beads per frame, rounded to a cube (216, 1000, ...)")
    args = ap.parse_args()

    import torch
    from hippynn import settings
    from bench_helpers import reline_edge_A, reline_frame

    settings.WARN_LOW_DISTANCES = False  # a jittered lattice has a few close pairs; hippynn would print each
    torch.set_num_threads(args.threads)
    n_side = round(args.beads ** (1 / 3))
    species, R, cell = reline_frame(n_side=n_side, edge_A=reline_edge_A(n_side ** 3))
    print(f"{len(species)}-bead frame, {device_description(args.threads)}; ms per evaluation (energy + forces, pairs included) "
          "and per training frame (batch 4)")
    print(f"{'network':<10} {'features':>8} {'sens.':>5} {'cutoff A':>8} {'eval ms':>8} {'train ms/frame':>15} "
          f"{'eval vs paper':>13}")
    paper = None
    for cand in CANDIDATES:
        ev, tr = measure(model_cfg(*cand), species, R, cell, args.repeats)
        paper = paper or ev
        print(f"{cand[0]:<10} {cand[1]:>8} {cand[2]:>5} {cand[4]:>8.1f} {ev:8.2f} {tr:15.2f} {ev / paper:13.2f}")


if __name__ == "__main__":
    main()

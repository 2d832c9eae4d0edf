"""Training with the pairs of each frame found once (kdcg.models.pairs.cache_training_pairs) against a
KD-tree pair search per batch, the path before (prints figures; asserts nothing).

On jittered-lattice frames at reline density (default 400 frames of 216 beads: the study's
training split and box size), with the given config's model, batch size and a teacher's loss,
in one process, side by side: seconds per epoch over the frames as hippynn's training loop
runs one (shuffled batches from the database's data loader, forward, loss, backward, Adam step)
with a pair search per batch, with the pairs cached in hippynn's sparse tensor, and with kdcg's
padded pair table; each path timed in turns, medians; and the one-time cost of finding the
pairs for the cache.

    .venv/bin/python benchmarks/training_pairs.py [--config config/config.yaml] [--frames 400]
        [--beads 216] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--beads", type=int, default=216, help="beads per frame, rounded to a cube")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one training job per core)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import torch
    import yaml
    from hippynn import settings
    from hippynn.databases import Database
    from hippynn.experiment.assembly import assemble_for_training
    from bench_helpers import device_description
    from bench_helpers import reline_edge_A, reline_frame

    from kdcg.models.model import build_model
    from kdcg.models.pairs import cache_training_pairs
    from kdcg.training.losses import student_loss
    from kdcg.models.model_io import compute_device
    from kdcg.training.train import database_arrays
    from kdcg.variants import get_variant

    settings.WARN_LOW_DISTANCES = False
    torch.set_num_threads(args.threads)
    device = compute_device()
    cfg = yaml.safe_load(Path(args.config).read_text())
    n_side = round(args.beads ** (1 / 3))
    edge = reline_edge_A(n_side ** 3)
    frames = [reline_frame(n_side=n_side, edge_A=edge, seed=k) for k in range(args.frames)]
    R = np.stack([f[1] for f in frames])
    data = {"Z": np.stack([f[0] for f in frames]), "R": R, "cell": np.stack([f[2] for f in frames]),
            "F": np.random.default_rng(0).normal(size=R.shape)}
    prior = {"taper_A": [[3.0] * 3] * 3, "strength_kcal_mol_A": 5.0, "dr_A": 0.15, "fraction_at_taper": 0.05}
    batch_size = cfg["training"]["batch_size"]

    def training_setup(cache: str | None):
        """A fresh graph (same seed) and database; cache: None, "sparse" (hippynn's) or "padded"."""
        torch.manual_seed(0)
        m = build_model(cfg["model"], 3, prior)
        total, _ = student_loss(m, get_variant("teacher"), R.shape[1])
        modules, info = assemble_for_training(total, {"TotalLoss": total})
        database = Database(database_arrays(data, None), seed=0, quiet=True, pin_memory=False, **info)
        database.make_explicit_split("train", torch.arange(args.frames))
        seconds = 0.0
        if cache:
            t0 = time.perf_counter()
            cache_training_pairs(modules.model, database, device, cfg["model"]["dist_hard_max_A"],
                                 padded=cache == "padded")
            seconds = time.perf_counter() - t0
            modules, info = assemble_for_training(total, {"TotalLoss": total})
            database.inputs = info["inputs"]
        modules.model.to(device), modules.loss.to(device)  # the loss graph indexes species too
        return modules, info, database, seconds

    def epoch(modules, db_info, database) -> float:
        """One epoch as hippynn's training loop runs it: shuffled batches from the database's
        data loader, forward, loss, backward, Adam step."""
        opt = torch.optim.Adam(modules.model.parameters(), lr=1e-4)
        n_in = len(db_info["inputs"])
        start = time.perf_counter()
        for batch in database.make_generator("train", "train", batch_size):
            batch = [b.to(device) for b in batch]
            opt.zero_grad()
            outputs = modules.model(*batch[:n_in])
            modules.loss(*outputs, *batch[n_in:])[0].backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    paths = {"pair search per batch": None, "pairs cached, sparse": "sparse", "pairs cached, padded": "padded"}
    setups = {name: training_setup(cache) for name, cache in paths.items()}
    for modules, info, database, _ in setups.values():
        epoch(modules, info, database)  # warm-up: kernels, allocator
    times = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, (modules, info, database, _) in setups.items():
            times[name].append(epoch(modules, info, database))
    m_cfg = cfg["model"]
    print(f"{device_description(args.threads)}: {args.frames} frames x {n_side ** 3} beads, batch {batch_size}, model "
          f"{m_cfg.get('network', 'HipnnQuad')} {m_cfg['n_features']} features, cutoff {m_cfg['dist_hard_max_A']} A")
    print(f"{'path':<24} {'s per epoch':>12} {'ms per frame':>13} {'finding the pairs once':>23}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        once = f"{setups[k][3]:.2f} s" if paths[k] else "-"
        print(f"{k:<24} {v:12.3f} {1000 * v / args.frames:13.2f} {once:>23}")
    base = med["pair search per batch"]
    print(f"per epoch, against a pair search per batch: hippynn's sparse cache {med['pairs cached, sparse'] / base:.2f}, "
          f"kdcg's padded table {med['pairs cached, padded'] / base:.2f}; padded / sparse "
          f"{med['pairs cached, padded'] / med['pairs cached, sparse']:.2f}")


if __name__ == "__main__":
    main()

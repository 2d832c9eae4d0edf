"""Training with the pairs of each frame found once (kdcg.pairs.cache_training_pairs) against a
KD-tree pair search per batch, the path before (prints figures; asserts nothing).

On jittered-lattice frames at reline density (default 40 frames of 216 beads, the size of the
default and study boxes), with the given config's model, batch size and a teacher's loss, in
one process, side by side: seconds per epoch over the frames (forward, loss, backward, Adam
step), each path timed in turns (plain, cached, plain, ...), medians; and the one-time cost of
finding the pairs for the cache.

    .venv/bin/python benchmarks/training_pairs.py [--config config/config.yaml] [--frames 40]
        [--beads 216] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    ap.add_argument("--frames", type=int, default=40)
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
    from network_cost import device_description
    from training import reline_edge_A, reline_frame

    from kdcg.model import build_model
    from kdcg.pairs import cache_training_pairs
    from kdcg.losses import student_loss
    from kdcg.model_io import compute_device
    from kdcg.training import database_arrays
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
    torch.manual_seed(0)
    m = build_model(cfg["model"], 3, prior)
    total, _ = student_loss(m, get_variant("teacher"), R.shape[1])
    plain, info = assemble_for_training(total, {"TotalLoss": total})
    database = Database(database_arrays(data, None), seed=0, quiet=True, pin_memory=False, **info)
    database.make_explicit_split("train", torch.arange(args.frames))
    t0 = time.perf_counter()
    cache_training_pairs(plain.model, database, device, cfg["model"]["dist_hard_max_A"])
    cache_s = time.perf_counter() - t0
    cached, cached_info = assemble_for_training(total, {"TotalLoss": total})
    batch_size = cfg["training"]["batch_size"]
    train = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in database.splits["train"].items()}

    def epoch(modules, db_info) -> float:
        modules.model.to(device), modules.loss.to(device)  # the loss graph indexes species too
        opt = torch.optim.Adam(modules.model.parameters(), lr=1e-4)
        start = time.perf_counter()
        for i in range(0, args.frames, batch_size):
            idx = torch.arange(i, min(i + batch_size, args.frames))
            batch = {k: (v.index_select(0, idx.to(v.device)) if v.is_sparse else v[idx.to(v.device)])
                     for k, v in train.items() if k in db_info["inputs"] + db_info["targets"]}
            opt.zero_grad()
            outputs = modules.model(*[batch[k] for k in db_info["inputs"]])
            modules.loss(*outputs, *[batch[k] for k in db_info["targets"]])[0].backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    epoch(plain, info), epoch(cached, cached_info)  # warm-up: kernels, allocator
    times = {"pair search per batch": [], "pairs cached": []}
    for _ in range(args.repeats):
        times["pair search per batch"].append(epoch(plain, info))
        times["pairs cached"].append(epoch(cached, cached_info))
    m_cfg = cfg["model"]
    print(f"{device_description(args.threads)}: {args.frames} frames x {n_side ** 3} beads, batch {batch_size}, model "
          f"{m_cfg.get('network', 'HipnnQuad')} {m_cfg['n_features']} features, cutoff {m_cfg['dist_hard_max_A']} A")
    print(f"{'path':<24} {'s per epoch':>12} {'ms per frame':>13}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:<24} {v:12.3f} {1000 * v / args.frames:13.2f}")
    saving = med["pair search per batch"] - med["pairs cached"]
    pays_back = f"repaid after {cache_s / saving:.1f} epochs" if saving > 0 else "no saving per epoch here"
    print(f"cached / per batch: {med['pairs cached'] / med['pair search per batch']:.2f} of the time per epoch; "
          f"finding the pairs once: {cache_s:.2f} s ({pays_back})")


if __name__ == "__main__":
    main()

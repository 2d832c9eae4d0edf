"""How many ensemble members one pass of kdcg.models.stacked_members should hold (prints figures;
asserts nothing). On one 1,000-bead reline-density frame, 8 members of random weights of the
config's network: ms per bare evaluation (energy + forces, pair search included) of the
ensemble member by member (the path before), stacked in passes of each given size, and
stacked with the automatic pass size (StackedMembers.automatic_members_per_pass); one model
for scale. All in one process, alternating over --rounds rounds, medians.

    .venv/bin/python benchmarks/ensemble_passes.py [--config config/paper.yaml] [--passes 1 2 4 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config" / "paper.yaml"))
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--passes", type=int, nargs="+", default=[1, 2, 4, 8], help="members per pass")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    import yaml
    from bench_helpers import bare_ms, member_by_member_ensemble, save_random_models
    from bench_helpers import device_description
    from bench_helpers import reline_frame

    from kdcg.models import ensemble
    from kdcg.models import model_forces
    from kdcg.models.stacked_members import StackedMembers

    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(Path(args.config).read_text())
    species, R, cell = reline_frame()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = save_random_models(cfg, args.members, tmp)
        ensemble.build_ensemble(paths, tmp / "stacked" / "model.pt")
        member_by_member_ensemble(paths, tmp / "member-by-member" / "model.pt")
        variants = {"one model": model_forces.ModelForces(paths[0]),
                    "member by member": model_forces.ModelForces(tmp / "member-by-member" / "model.pt")}
        chosen: list[int] = []
        for per_pass in [*args.passes, None]:
            model = model_forces.ModelForces(tmp / "stacked" / "model.pt")
            (stack,) = [m for m in model.graph.modules() if isinstance(m, StackedMembers)]
            stack.members_per_pass = per_pass
            if per_pass is None:  # note the size the automatic rule picks for this frame
                stack.register_forward_pre_hook(lambda module, inputs: chosen.append(
                    module.automatic_members_per_pass(inputs[0].shape[0], len(inputs[1]), inputs[1].device)))
            variants[f"stacked, {per_pass} per pass" if per_pass else "stacked, automatic"] = model
        times = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, model in variants.items():
                times[name].append(bare_ms(model, species, R, cell, args.repeats))
    m = cfg["model"]
    print(f"{args.members} members, {len(species)} beads, {m['network']} {m['n_features']} features, "
          f"{m['n_sensitivities']} sensitivities, cutoff {m['dist_hard_max_A']} A, {device_description(args.threads)}; "
          f"bare evaluation ms, medians of {args.rounds} alternating rounds")
    for name, t in times.items():
        print(f"{name:<24} {statistics.median(t):9.1f}")
    print(f"the automatic rule picked {chosen[-1]} member(s) per pass on this frame")


if __name__ == "__main__":
    main()

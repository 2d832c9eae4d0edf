"""CG MD speed in LAMMPS against bare model evaluations (prints figures; asserts nothing).

On one 1,000-bead reline-density frame (44.84 A box), with the paper's model size and cutoff
(random weights: speed does not depend on them), in one process, side by side:
  - bare: one energy + force evaluation of the saved model, pair finding included (skin 0);
  - MD: ms per LAMMPS NVT step with the model through fix external pf/callback, with kdcg's
    Verlet pair list (kdcg.models.pairs: rebuilt when a bead has moved more than half the skin), with
    hippynn's own pair memory and the same skin (its rebuild test sums displacements over all
    beads: the path before kdcg.models.pairs), and with no skin (a pair search every step);
for one model and for the 8-teacher ensemble (one shared pair list), the ensemble both as kdcg
builds it (kdcg.models.stacked_members: the members as one batched computation) and member by member
(the path before); and one model with hippynn's own inverse sensitivity and pair reordering
(the path before kdcg.models.sensitivity, whose denormal-free tail gives the same forces). Every row
is measured in each of --rounds alternating rounds; the figures are medians. Goals on a 2-core
machine: MD step <= 0.9 x bare evaluation; ensemble MD step <= 5 x one-model MD step. Also the
floor of the first (the pair search's share of a bare evaluation, by forward hooks), the part
of one bare evaluation the members could share (pair search and prior) and the ensemble cost
that sharing all of it would leave if each member's network cost what it costs alone
(stacking the members saves dispatch and launches, which matter on a GPU, and can use a CPU's
cache better, not their arithmetic).

    .venv/bin/python benchmarks/md.py [--config config/paper.yaml] [--members 8] [--steps 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_helpers import bare_ms, md_ms, member_by_member_ensemble, save_random_models  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def shared_part_ms(model, species, R, cell, repeats: int) -> tuple[float, float, float]:
    """(one bare evaluation, the part of it the members of an ensemble share, the pair search
    alone) in ms, medians: the shared part is the pair search and the repulsive prior (timed by
    forward hooks); the rest, the network's forward and backward, each member pays for itself."""
    from kdcg.models.model import PairRepulsion
    from kdcg.models.pairs import VerletPairs

    spans: dict[type, float] = {}

    def start(module, inputs):
        spans[type(module)] = spans.get(type(module), 0.0) - time.perf_counter()

    def stop(module, inputs, output):
        spans[type(module)] += time.perf_counter()

    for module in model.graph.modules():
        if isinstance(module, (VerletPairs, PairRepulsion)):
            module.register_forward_pre_hook(start)
            module.register_forward_hook(stop)
    model(species, R, cell)  # warm-up
    totals, shared, search = [], [], []
    for _ in range(repeats):
        spans.clear()
        t0 = time.perf_counter()
        model(species, R, cell)
        totals.append(time.perf_counter() - t0)
        shared.append(sum(spans.values()))
        search.append(spans.get(VerletPairs, 0.0))
    return tuple(1000.0 * statistics.median(x) for x in (totals, shared, search))


def hippynn_pair_memory(model, skin_A: float):
    """The same model with hippynn's own pair memory and rebuild test (the path before kdcg.models.pairs)."""
    from hippynn.layers.pairs.dispatch import KDTreePairsMemory

    for module in model.graph.modules():
        if isinstance(module, KDTreePairsMemory):
            module.__class__ = KDTreePairsMemory
            module.set_skin(skin_A)
    return model


def hippynn_sensitivity(model):
    """The same model with hippynn's InverseSensitivityModule (kdcg.models.sensitivity turns it into
    kdcg's on loading)."""
    from kdcg.models.sensitivity import use_inverse_sensitivity

    use_inverse_sensitivity(model.graph, hippynns=True)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config" / "paper.yaml"))
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds over every row; medians")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    import yaml
    from bench_helpers import reline_frame

    from kdcg.models import ensemble
    from kdcg.models import hippynn_import
    from kdcg.models import model_forces

    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(Path(args.config).read_text())
    dt = cfg["md"]["timestep_fs"]
    species, R, cell = reline_frame()
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_random_models(cfg, args.members, Path(tmp))
        ensemble.build_ensemble(paths, Path(tmp) / "ensemble" / "model.pt")
        member_by_member_ensemble(paths, Path(tmp) / "ensemble-member-by-member" / "model.pt")
        kinds = {"one model": paths[0], f"ensemble of {args.members}": Path(tmp) / "ensemble" / "model.pt",
                 "  member by member": Path(tmp) / "ensemble-member-by-member" / "model.pt",
                 "one, hippynn sens.": paths[0]}
        runs = {name: [] for name in kinds}
        skin = cfg["md"]["pair_skin_A"]
        for round_ in range(1, args.rounds + 1):  # alternating rounds: this machine's speed drifts
            print(f"round {round_} of {args.rounds}", file=sys.stderr, flush=True)
            for name, path in kinds.items():
                before = name.startswith("one, hippynn")
                # the path before kdcg.models.sensitivity: hippynn's module and its pair reordering
                hippynn_import.reorder_pairs_by_index_select(not before)
                like = hippynn_sensitivity if before else (lambda model: model)
                bare = bare_ms(like(model_forces.ModelForces(path)), species, R, cell, args.repeats)
                step = md_ms(like(model_forces.ModelForces(path, pair_skin_A=skin)), species, R, cell, args.steps, dt)
                step_hippynn = md_ms(hippynn_pair_memory(like(model_forces.ModelForces(path)), skin), species, R, cell,
                                     args.steps, dt)
                step0 = md_ms(like(model_forces.ModelForces(path, pair_skin_A=0.0)), species, R, cell, args.steps, dt)
                runs[name].append((bare, step, step_hippynn, step0))
                hippynn_import.reorder_pairs_by_index_select(True)
        rows = {name: tuple(statistics.median(column) for column in zip(*values)) for name, values in runs.items()}
        one_ms, shared_ms, search_ms = shared_part_ms(model_forces.ModelForces(paths[0]), species, R, cell,
                                                      args.repeats)
    from bench_helpers import device_description

    print(f"CG MD, {len(species)} beads, cutoff {cfg['model']['dist_hard_max_A']} A, {cfg['model']['n_features']} features, "
          f"{device_description(args.threads)}, timestep {dt} fs, pair skin {cfg['md']['pair_skin_A']} A; "
          f"medians of {args.rounds} alternating rounds")
    print(f"{'model':<18} {'bare eval ms':>13} {'MD ms/step':>11} {'(hippynn skin)':>15} {'(skin 0)':>9} {'MD/bare':>8} "
          f"{'ns/day':>8}")
    for name, (bare, step, step_h, step0) in rows.items():
        print(f"{name:<18} {bare:13.1f} {step:11.1f} {step_h:15.1f} {step0:9.1f} {step / bare:8.3f} "
              f"{dt * 1e-6 * 86400e3 / step:8.3f}")
    (b1, s1, h1, _), (bn, sn, hn, _), (bo, so, _, _), (bh, sh, _, _) = rows.values()
    print(f"MD step / bare evaluation, one model: {s1 / b1:.3f} (goal <= 0.9; hippynn's pair memory: {h1 / b1:.3f})")
    print(f"MD step / bare evaluation, ensemble:  {sn / bn:.3f} (hippynn's pair memory: {hn / bn:.3f})")
    print(f"ensemble MD step / one-model MD step: {sn / s1:.2f} for {args.members} members, stacked (goal <= 5); "
          f"{so / s1:.2f} member by member (the path before)")
    print(f"one model with kdcg's sensitivity / with hippynn's: bare evaluation {b1 / bh:.3f}, MD step {s1 / sh:.3f} "
          f"(MD / bare with hippynn's: {sh / bh:.3f})")
    # what sharing can reach: the pair search and the prior once, each member's network in full
    bound = (shared_ms + args.members * (one_ms - shared_ms)) / one_ms
    print(f"one bare evaluation {one_ms:.1f} ms, of which the pair search {search_ms:.1f} ms: an MD step that reused "
          f"every pair and cost nothing else would be {1 - search_ms / one_ms:.3f} x a bare evaluation")
    print(f"one bare evaluation {one_ms:.1f} ms, of which pair search + prior {shared_ms:.1f} ms "
          f"({100 * shared_ms / one_ms:.0f} %, what the members can share); the networks' forward and backward "
          f"{one_ms - shared_ms:.1f} ms per member: an ensemble that shares all the rest still costs "
          f"{bound:.2f} x one model for {args.members} members")


if __name__ == "__main__":
    main()

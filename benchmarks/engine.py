"""The static-shape compiled engine (kdcg.models.compiled_forces) against today's eager path
(kdcg.models.model_forces.ModelForces), side by side in one process: rows alternate over rounds,
medians are printed, with the machine.

One evaluation = energies and forces of every frame, as an MD step asks for them, with the pair
list reused (a Verlet skin of 1 A and unchanged positions: the step between two rebuilds).

    python benchmarks/engine.py --threads 2

Prints ``speedup md_study`` (study network, 200 beads, 4 replicas evaluated together),
``speedup md_paper`` (paper network, 1,000 beads), ``speedup train_study`` and
``gflops md_paper``; beside them ``speedup md_study_ensemble`` (the study's stacked ensemble of
4 members, 4 replicas: the study's longest MD job). The training step is a teacher's: forces against mapped forces, its
gradient with respect to the weights, an Adam step; its headline on a CPU is the numba kernels'
path (``training.engine: kernels``), the compiled one's figure printed beside it.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_helpers import REPO, cpu_name, device_description, reline_edge_A, reline_frame, save_random_models


def peak_gflops(threads: int) -> float:
    """Single-precision peak of ``threads`` cores: 2.5 GHz x 2 FMA units x 16 float32 lanes x 2
    flops (AVX-512), the figure the engine issue quotes for this machine's cores."""
    return threads * 2.5 * 2 * 16 * 2


def network_flops(cfg: dict, n_beads: int, n_pairs: int) -> float:
    """Multiply-adds x 2 of one forward pass of the network on n_pairs listed pairs: the
    environment sums and the interaction and atom layers (the backward costs about twice)."""
    m = cfg["model"]
    components = {"Hipnn": 1, "HipnnVec": 4, "HipnnQuad": 9}[m["network"]]
    s, f = m["n_sensitivities"], m["n_features"]
    species = 3
    env = n_pairs * components * s * species
    interaction = n_beads * components * s * species * f
    atom_layers = n_beads * m["n_atom_layers"] * 2 * f * f
    return 2.0 * (env + interaction + atom_layers)


def train_study(threads: int, rounds: int, n_frames: int = 40, n_side: int = 6) -> dict:
    """ms per training batch of the study network, today's path (hippynn's training graph with
    kdcg's cached padded pair table, as kdcg.training.train runs it) against the compiled one
    (kdcg.models.dense_network.AnalyticForces with its weights trainable, compiled forward and
    backward, one neighbour table per batch found once); same seed, same frames, same batches,
    alternating rounds of an epoch each, medians."""
    import torch
    from hippynn import settings

    from bench_helpers import study_teacher_training
    from kdcg.models.compiled_forces import stacked_parts
    from kdcg.models.dense_network import AnalyticForces, DenseNetwork, trainable_weights
    from kdcg.models.model import build_model
    from kdcg.models.model_io import compute_device
    from kdcg.models.neighbour_table import neighbour_rows

    settings.WARN_LOW_DISTANCES = False
    device = compute_device()
    setup = study_teacher_training(n_frames, device, n_side)
    cfg, species, R, cell, F, prior = setup.cfg, setup.species, setup.R, setup.cell, setup.F, setup.prior
    modules, info, database = setup.modules, setup.info, setup.database
    batch = cfg["training"]["batch_size"]
    cutoff = cfg["model"]["dist_hard_max_A"]
    kernel_modules = copy.deepcopy(modules)  # the same initial weights, trained through the kernels
    n_in = len(info["inputs"])
    eager_batches = [[b.to(device) for b in bt] for bt in database.make_generator("train", "train", batch)]
    eager_opt = torch.optim.Adam(modules.model.parameters(), lr=1e-4, foreach=True)

    def graph_epoch(training_modules, optimizer):
        """An epoch of hippynn's training loop over the batches: hippynn's graph or the kernels' engine."""
        for b in eager_batches:
            optimizer.zero_grad()
            outputs = training_modules.model(*b[:n_in])
            training_modules.loss(*outputs, *b[n_in:])[0].backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    def eager_epoch():
        graph_epoch(modules, eager_opt)

    torch.manual_seed(0)
    m = build_model(cfg["model"], 3, prior)
    from hippynn.graphs import GraphModule
    stacked, repulsion = stacked_parts(GraphModule([m.species, m.positions, m.cells], [m.forces, m.energy]))
    forces_of = AnalyticForces(DenseNetwork(stacked, repulsion, species, cutoff)).to(device)
    weights = trainable_weights(stacked)
    capacities = neighbour_rows(R, cell, cutoff, None, species, 3)[3]  # the fullest bead of any frame
    tables = []
    for start in range(0, n_frames, batch):
        neighbour, offset, mirror, _, _ = neighbour_rows(R[start:start + batch], cell, cutoff, capacities, species, 3)
        tables.append(tuple(t.to(device) for t in (torch.as_tensor(R[start:start + batch], dtype=torch.float32),
                                                   neighbour, offset, mirror,
                                                   torch.as_tensor(F[start:start + batch], dtype=torch.float32))))

    def force_loss(positions, neighbour, offset, mirror, target):
        diff = forces_of(positions, neighbour, offset, mirror, capacities)[3][0] - target
        return diff.square().mean().sqrt() + diff.abs().mean()

    compiled_loss = torch.compile(force_loss, dynamic=False)
    compiled_opt = torch.optim.Adam(weights, lr=1e-4, foreach=True)

    def compiled_epoch():
        for table in tables:
            compiled_opt.zero_grad()
            compiled_loss(*table).backward()
            compiled_opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    kernel_opt = torch.optim.Adam(kernel_modules.model.parameters(), lr=1e-4, foreach=True)

    from kdcg.training.kernel_graph import kernel_engine

    # entered once, as a training's epochs run within one: the frames' tables are kept between epochs
    kernel_context = kernel_engine(kernel_modules.model)
    kernel_context.__enter__()

    def kernel_epoch():
        graph_epoch(kernel_modules, kernel_opt)

    t0 = time.perf_counter()
    compiled_epoch()
    warm_up_s = time.perf_counter() - t0
    eager_epoch()
    paths = [("eager", eager_epoch), ("compiled", compiled_epoch)]
    if device.type == "cpu":  # kdcg's numba kernels: a CPU path (training.engine kernels)
        kernel_epoch()
        paths.append(("kernels", kernel_epoch))
    times = {name: [] for name, _ in paths}
    for _ in range(rounds):
        for name, epoch in paths:
            t0 = time.perf_counter()
            epoch()
            times[name].append(1000 * (time.perf_counter() - t0) / len(tables))
    kernel_context.__exit__(None, None, None)
    return dict(frames=n_frames, beads=len(species), batch=batch, warm_up_s=warm_up_s,
                **{f"{name}_ms": statistics.median(v) for name, v in times.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import torch
    import yaml

    from kdcg.models.compiled_forces import CompiledModelForces
    from kdcg.models.ensemble import build_ensemble
    from kdcg.models.model_forces import ModelForces

    torch.set_num_threads(args.threads)
    cases = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, config, n_side, n_frames, n_members in (("md_study", "study", 6, 4, 1), ("md_paper", "paper", 10, 1, 1),
                                                          ("md_study_ensemble", "study", 6, 4, 4)):
            cfg = yaml.safe_load((REPO / "config" / f"{config}.yaml").read_text())
            species, R, cell = reline_frame(n_side, reline_edge_A(n_side ** 3))
            rng = np.random.default_rng(1)
            frames = np.stack([R + rng.normal(0, 0.05, R.shape) for _ in range(n_frames)])
            paths = save_random_models(cfg, n_members, Path(tmp) / name)
            path = paths[0]
            if n_members > 1:  # the study's stacked ensemble of 4 teachers
                path = Path(tmp) / name / "ensemble" / "model.pt"
                build_ensemble(paths, path)
            eager = ModelForces(path, pair_skin_A=1.0)
            compiled = CompiledModelForces(path, pair_skin_A=1.0)
            t0 = time.perf_counter()
            compiled.evaluate_batch(species, frames, cell)
            warm_up_s = time.perf_counter() - t0
            engines = {"eager": eager, "compiled": compiled}
            if compiled.scalar_kernels:  # beside it, the same engine with the pair stage compiled by Inductor
                engines["inductor"] = CompiledModelForces(path, pair_skin_A=1.0, scalar_kernels=False)
                engines["inductor"].evaluate_batch(species, frames, cell)
            cases[name] = dict(cfg=cfg, species=species, frames=frames, cell=cell, engines=engines, compiled=compiled,
                               warm_up_s=warm_up_s, times={kind: [] for kind in engines})
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_} of {args.rounds}", file=sys.stderr, flush=True)
            for case in cases.values():
                for kind, model in case["engines"].items():
                    model.evaluate_batch(case["species"], case["frames"], case["cell"])  # pair list built
                    times = []
                    for _ in range(args.repeats):
                        t = time.perf_counter()
                        model.evaluate_batch(case["species"], case["frames"], case["cell"])
                        times.append(time.perf_counter() - t)
                    case["times"][kind].append(1000 * statistics.median(times))

    print(f"engine benchmark: {cpu_name()}, {device_description(args.threads)}; medians of {args.rounds} alternating "
          f"rounds of {args.repeats} evaluations (energies + forces, pair list reused)")
    for name, case in cases.items():
        eager_ms = statistics.median(case["times"]["eager"])
        compiled_ms = statistics.median(case["times"]["compiled"])
        table = case["compiled"]._table
        pair_stage = "numba scalar pair kernels" if case["compiled"].scalar_kernels else "torch.compile"
        print(f"  {name}: {len(case['frames'])} frame(s) x {len(case['species'])} beads, eager {eager_ms:.2f} ms, "
              f"compiled {compiled_ms:.2f} ms (pair stage: {pair_stage}; {table.capacity} pair slots per bead; "
              f"warm-up {case['warm_up_s']:.1f} s, paid once per job)")
        if "inductor" in case["times"]:
            inductor_ms = statistics.median(case["times"]["inductor"])
            print(f"    the same engine with its pair stage through torch.compile: {inductor_ms:.2f} ms "
                  f"(speedup {eager_ms / inductor_ms:.2f})")
        case["ms"] = (eager_ms, compiled_ms)
    for name in cases:
        eager_ms, compiled_ms = cases[name]["ms"]
        print(f"speedup {name}: {eager_ms / compiled_ms:.2f}")
    train = train_study(args.threads, args.rounds)
    print(f"  train_study: {train['frames']} frames x {train['beads']} beads in batches of {train['batch']}, one "
          f"teacher's force loss (RMSE + MAE), forward + backward + Adam step, pairs cached on both paths: eager "
          f"(hippynn's training graph, forces by autograd, the loss's gradient through their second derivative) "
          f"{train['eager_ms']:.2f} ms per batch, compiled (forces written out, one backward pass) "
          f"{train['compiled_ms']:.2f} ms (warm-up {train['warm_up_s']:.1f} s)")
    if "kernels_ms" in train:
        print(f"  train_study through the numba pair kernels and their adjoints (training.engine kernels, the "
              f"training stage's path on a CPU): {train['kernels_ms']:.2f} ms per batch; the compiled path's speedup "
              f"{train['eager_ms'] / train['compiled_ms']:.2f}")
    best = train.get("kernels_ms", train["compiled_ms"])
    print(f"speedup train_study: {train['eager_ms'] / best:.2f}")
    paper = cases["md_paper"]
    table = paper["compiled"]._table
    listed = int((table.offset_A[..., 0] != 2 * (table.cutoff_A + table.skin_A)).sum())
    flops = 3 * network_flops(paper["cfg"], len(paper["species"]), listed)  # forward + backward ~ 3 forwards
    print(f"gflops md_paper: {flops / (paper['ms'][1] * 1e6):.1f} of {peak_gflops(args.threads):.0f} peak "
          f"(network arithmetic of the listed pairs; compiled path)")


if __name__ == "__main__":
    main()

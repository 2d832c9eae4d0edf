"""Where a training batch step goes through the kernels' engine (training.engine: kernels):
a profile of the study network's teacher step (prints figures; asserts nothing).

The set-up is benchmarks/engine.py's train_study (hippynn's training graph for a teacher of
config/study.yaml, a synthetic box of reline beads, random forces, batch of the study's size),
trained through kdcg.training.kernel_graph as kdcg.training.train does. After one warm-up epoch
(numba compiles, the frames' tables are built and kept), --epochs epochs run under
torch.profiler with each phase of a step marked: the forward pass (the kernels and the per-bead
layers), the loss, the backward pass (the kernels' adjoints and the layers' gradients), the
optimiser. Prints per phase the wall ms per batch step (perf_counter around each phase, medians
over the steps), then what the profiler attributes inside: PyTorch operators by name (self CPU
time, ms per step), and for each phase the time in no PyTorch operator (Python and the numba
kernels, which the profiler does not see).

    .venv/bin/python benchmarks/training_profile.py [--threads 2] [--epochs 3] [--frames 40]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "src"))

from bench_helpers import cpu_name  # noqa: E402

PHASES = ("forward", "loss", "backward", "optimizer")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--top", type=int, default=12, help="operators listed")
    args = ap.parse_args()

    import torch
    from hippynn import settings
    from torch.profiler import ProfilerActivity, profile, record_function

    from bench_helpers import study_teacher_training
    from kdcg.training.kernel_graph import kernel_engine, training_engine

    settings.WARN_LOW_DISTANCES = False
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    setup = study_teacher_training(args.frames, device)
    cfg, species, modules, database = setup.cfg, setup.species, setup.modules, setup.database
    batch = cfg["training"]["batch_size"]
    n_in = len(setup.info["inputs"])
    batches = list(database.make_generator("train", "train", batch))
    optimizer = torch.optim.Adam(modules.model.parameters(), lr=1e-4, foreach=True)
    assert training_engine("kernels", modules.model, device) == "kernels"
    wall = defaultdict(list)

    def step(b, timed: bool) -> None:
        marks = [time.perf_counter()]
        with record_function("forward"):
            optimizer.zero_grad()
            outputs = modules.model(*b[:n_in])
        marks.append(time.perf_counter())
        with record_function("loss"):
            loss = modules.loss(*outputs, *b[n_in:])[0]
        marks.append(time.perf_counter())
        with record_function("backward"):
            loss.backward()
        marks.append(time.perf_counter())
        with record_function("optimizer"):
            optimizer.step()
        marks.append(time.perf_counter())
        if timed:
            for phase, t0, t1 in zip(PHASES, marks, marks[1:]):
                wall[phase].append(1000 * (t1 - t0))

    with kernel_engine(modules.model):
        for b in batches:  # warm-up: numba's compilation, the frames' tables
            step(b, False)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.epochs):
                for b in batches:
                    step(b, True)
    n_steps = args.epochs * len(batches)

    print(f"machine: {cpu_name()} ({platform.machine()}), {args.threads} threads; torch {torch.__version__}")
    print(f"config/study.yaml teacher (model.network {cfg['model']['network']}), {len(species)} beads, batch {batch}, "
          f"{args.frames} frames, {args.epochs} epochs profiled ({n_steps} steps), training.engine kernels")
    step_ms = sum(statistics.median(wall[p]) for p in PHASES)
    print(f"{'phase':<10} {'ms/step':>8} {'share':>6}  {'in no PyTorch operator (Python, numba) ms/step':>10}")
    events = prof.key_averages()
    by_name = {e.key: e for e in events}
    for phase in PHASES:
        ms = statistics.median(wall[phase])
        outside = by_name[phase].self_cpu_time_total / 1000 / n_steps if phase in by_name else float("nan")
        print(f"{phase:<10} {ms:8.2f} {ms / step_ms:6.1%}  {outside:10.2f}")
    print(f"{'step':<10} {step_ms:8.2f}")
    ops = sorted((e for e in events if e.key not in PHASES), key=lambda e: e.self_cpu_time_total, reverse=True)
    print(f"PyTorch operators by self CPU time (ms per step; autograd nodes named *Backward hold the kernels' adjoints):")
    for e in ops[: args.top]:
        print(f"  {e.key:<48} {e.self_cpu_time_total / 1000 / n_steps:7.3f}  calls/step {e.count / n_steps:6.1f}")


if __name__ == "__main__":
    main()

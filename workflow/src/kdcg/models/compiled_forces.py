"""Energy and forces of a saved model through the static-shape engine: the model's weights in
kdcg.models.dense_network over a neighbour table of fixed capacity (kdcg.models.neighbour_table),
compiled with ``torch.compile`` (Inductor: C++/OpenMP on a CPU, Triton on a GPU), replicas and
ensemble members evaluated in one graph. The same calls as kdcg.models.model_forces.ModelForces,
which stays the reference (``md.engine: eager``).

The compiler specialises the graph to the shapes of one run: frames per evaluation, beads and
the table's capacity. Its first evaluation pays the compilation (logged, with the time); a
capacity that has to grow, or a batch with more frames than before, compiles once more (logged).
A batch with fewer frames is padded with copies of its last frame, so a replica leaving a batch
does not recompile. Inductor keeps what it compiled in its on-disk cache
(TORCHINDUCTOR_CACHE_DIR), so later jobs of the same shapes start faster.

A scalar network (the study's ``Hipnn``) on a CPU takes its pair stage from hand-written numba
kernels instead (kdcg.models.scalar_pair_kernels; ``scalar_kernels=False`` keeps Inductor's),
with only its per-bead layers compiled by torch.compile: measured faster
(benchmarks/engine.py, docs/performance.md); numba caches its machine code on disk too.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from kdcg.models.model_forces import Evaluation

log = logging.getLogger(__name__)

ENGINES = ("eager", "compiled")
#: md.engine auto: the engine measured faster on each device (benchmarks/engine.py,
#: docs/performance.md). No GPU figure of the compiled engine yet: eager there.
ENGINE_BY_DEVICE = {"cpu": "compiled", "cuda": "eager"}
#: ... for a job of at least this many MD steps per replica; a shorter one stays eager. On 2 CPU
#: cores the compiled graph saves about 2 ms per step of the study network's 4 replicas and its
#: warm-up took 7 s (Inductor's cache warm) to 23 s (cold) (docs/performance.md): it pays back
#: after 3,500-11,500 steps, so a few-ps test or default run would only lose by it.
COMPILED_MIN_STEPS = 10_000
#: graphs torch may compile for one engine's forward (a new capacity or batch size each) before
#: it falls back to running it eagerly; torch's default of 8 could be reached by a long run
#: whose table grows often. The engine warns when it passes this.
RECOMPILE_LIMIT = 64


def chosen_engine(engine: str, device: torch.device, steps: int | None = None) -> str:
    """md.engine resolved for this device and a job of ``steps`` MD steps per replica (None:
    long): eager or compiled."""
    if engine == "auto":
        if steps is not None and steps < COMPILED_MIN_STEPS:
            return "eager"
        return ENGINE_BY_DEVICE.get(device.type, "eager")
    if engine not in ENGINES:
        raise ValueError(f"md.engine must be auto, eager or compiled, not {engine!r}")
    return engine


def open_model_forces(model_path: Path, engine: str, data: dict | None = None, steps: int | None = None):
    """The model's force evaluator for MD: ModelForces (eager) or CompiledModelForces."""
    from kdcg.models.model_forces import ModelForces
    from kdcg.models.model_io import compute_device

    if chosen_engine(engine, compute_device(), steps) == "compiled":
        return CompiledModelForces(model_path, data=data)
    return ModelForces(model_path, data=data)


def graph_modules(graph) -> dict:
    """node name -> torch module of every module node a kdcg model graph computes."""
    modules = {}
    for node in graph.forward_output_list:
        module = getattr(node, "torch_module", None)
        if isinstance(module, torch.nn.Module):
            modules[node.name] = module
    return modules


def stacked_parts(graph):
    """(StackedMembers, PairRepulsion) of a loaded kdcg model graph: one network, a stacked
    ensemble, or an ensemble of members one after another."""
    from kdcg.models.model import PairRepulsion
    from kdcg.models.stacked_members import StackedMembers

    modules = graph_modules(graph)
    repulsion = modules.get("repulsion")
    if not isinstance(repulsion, PairRepulsion):
        raise TypeError("the model has no repulsive prior node 'repulsion'")
    if isinstance(modules.get("members"), StackedMembers):
        return modules["members"], repulsion
    if "hipnn_ts" in modules:
        return StackedMembers([modules["hipnn_ts"]], [modules["hipnn_energy"]]), repulsion
    k = 1
    networks, heads = [], []
    while f"hipnn_ts_{k}" in modules:
        networks.append(modules[f"hipnn_ts_{k}"])
        heads.append(modules[f"hipnn_energy_{k}"])
        k += 1
    if not networks:
        raise TypeError("the model graph holds no HIP-NN network kdcg built")
    return StackedMembers(networks, heads), repulsion


class CompiledModelForces:
    """Energy and forces of a saved kdcg model (single or ensemble) on frames of one system,
    through the static-shape engine; ``compile=False`` runs the same graph eagerly (tests)."""

    def __init__(self, model_path: Path, pair_skin_A: float = 0.0, data: dict | None = None, compile: bool = True,
                 analytic: bool = True, scalar_kernels: bool = True):
        from kdcg.models.model_io import compute_device, load_model

        self.path = Path(model_path)
        self.graph, self.record = load_model(self.path, data)
        self.device = compute_device()
        self.species_names = list(self.record["prior"]["species_names"])
        self.cutoff_A = float(self.record["model_cfg"]["dist_hard_max_A"])
        self.stacked, self.repulsion = stacked_parts(self.graph)
        self.skin_A = float(pair_skin_A)
        self.compile = compile
        # forces written out where the network allows it (kdcg.models.dense_network.AnalyticForces),
        # else autograd through the dense graph
        self.analytic_allowed = analytic
        self.analytic = False
        # a scalar network's pair stage in numba kernels on a CPU (kdcg.models.scalar_pair_kernels)
        self.scalar_kernels_allowed = scalar_kernels
        self.scalar_kernels = False
        self._network = None
        self._run = None
        self._species_key = None
        self._frames = 0
        self._table = None
        self.compilations: list[float] = []  # seconds of each first evaluation at new shapes
        self._restored: dict | None = None  # pair_state of a restart, for the next table

    @property
    def n_members(self) -> int:
        return self.stacked.n_members

    def set_pair_skin(self, skin_A: float) -> None:
        self.skin_A = float(skin_A)
        self._table = None

    def forget_pairs(self) -> None:
        if self._table is not None:
            self._table.forget()

    def pair_state(self) -> dict | None:
        """What decides the compiled shapes now (table capacities, frames per evaluation): kept
        with each MD restart file. The capacities grow with the run's history, and a graph of
        other shapes sums in another order, so a resumed run takes them back
        (``restore_pair_state``) to give the uninterrupted run's bits."""
        if self._table is None or self._table.capacities is None:
            return None
        return {"capacities": [int(c) for c in self._table.capacities], "frames": int(self._frames)}

    def restore_pair_state(self, state: dict) -> None:
        """Shapes saved by ``pair_state`` at a restart, used by the next table built."""
        self._restored = {"capacities": tuple(int(c) for c in state["capacities"]), "frames": int(state["frames"])}
        self._table = None

    def _prepare(self, species) -> None:
        from kdcg.models.dense_network import (AnalyticForces, DenseNetwork, ScalarKernelForces, analytic_forces_apply,
                                               scalar_kernels_apply)

        species = np.asarray(species, dtype=np.int64)
        key = species.tobytes()
        if self._species_key == key:
            return
        self._species_key = key
        self._network = DenseNetwork(self.stacked, self.repulsion, species, self.cutoff_A).to(self.device)
        self._network.members_per_pass = self._network.stacked.automatic_members_per_pass(
            len(species), len(species) * 64, self.device) if self.device.type == "cpu" else self.n_members
        self.analytic = self.analytic_allowed and analytic_forces_apply(self.stacked)
        self.scalar_kernels = (self.analytic and self.scalar_kernels_allowed and self.device.type == "cpu"
                               and scalar_kernels_apply(self.stacked))
        if self.scalar_kernels:  # compiled by numba at its first call (cached on disk), not by torch.compile
            self._run = ScalarKernelForces(self._network, compile=self.compile)
        else:
            module = AnalyticForces(self._network) if self.analytic else self._network
            if self.compile:
                dynamo = torch._dynamo.config
                dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)
            self._run = torch.compile(module, dynamic=False) if self.compile else module
        self._table = None
        self._frames = 0

    def __call__(self, species, positions, cell) -> Evaluation:
        return self.evaluate_batch(species, np.asarray(positions)[None], cell)[0]

    def evaluate_batch(self, species, positions, cell) -> list[Evaluation]:
        """Frames of one system: positions (frames, beads, 3) A, species (beads,), cell (3, 3) A."""
        from kdcg.models.neighbour_table import NeighbourTable

        self._prepare(species)
        positions = np.asarray(positions, dtype=np.float64)
        n = len(positions)
        restored, self._restored = self._restored, None
        if restored is not None:
            self._frames = max(self._frames, restored["frames"])
        if n > self._frames:
            self._frames = n
            self._table = None
        if n < self._frames:  # padded with copies of the last frame: the shapes the graph knows
            positions = np.concatenate([positions, np.repeat(positions[-1:], self._frames - n, axis=0)])
        if self._table is None:
            # rows grouped by neighbour species where the forces are written out
            self._table = NeighbourTable(self.cutoff_A, self.skin_A, species if self.analytic else None,
                                         len(self.species_names))
            if restored is not None:
                self._table.capacities = restored["capacities"]
        grown = self._table.update(positions, cell)
        first_at_shape = grown or self._table.builds == 1 and self._table.reuses == 0
        t0 = time.perf_counter()
        energy, forces, member_forces = self._forces(positions)
        if first_at_shape and self.compile:
            seconds = time.perf_counter() - t0
            self.compilations.append(seconds)
            log.info("compiled engine (%s): %d frame(s) x %d beads x %d pair slots compiled in %.1f s",
                     "scalar pair kernels, numba" if self.scalar_kernels else "torch.compile", self._frames,
                     positions.shape[1], self._table.capacity, seconds)
            if len(self.compilations) > torch._dynamo.config.recompile_limit:
                log.warning("compiled engine: %d shapes compiled, beyond torch's recompile limit of %d: this "
                            "shape runs eagerly (slower, the same results)", len(self.compilations),
                            torch._dynamo.config.recompile_limit)
        spreads = np.full(n, float("nan"))
        if self.n_members > 1:
            spreads = np.sqrt(member_forces.var(axis=0).sum(axis=-1).mean(axis=-1))[:n]
        return [Evaluation(float(energy[b]), forces[b], float(spreads[b])) for b in range(n)]

    def _forces(self, positions):
        """(energies (B,), mean forces (B, N, 3), member forces (M, B, N, 3)), float64 numpy."""
        frames = torch.as_tensor(positions, dtype=torch.float32, device=self.device)
        if self.analytic:
            with torch.no_grad():
                member_energy, prior_energy, _, members = self._run(
                    frames, self._table.neighbour.to(self.device), self._table.offset_A.to(self.device),
                    self._table.mirror.to(self.device), self._table.capacities)
            energy = member_energy.mean(0) + prior_energy
            members = members.cpu().numpy().astype(np.float64)
            return energy.cpu().numpy().astype(np.float64), members.mean(axis=0), members
        member_positions = frames.unsqueeze(0).expand(self.n_members, -1, -1, -1).clone().requires_grad_(True)
        prior_positions = frames.clone().requires_grad_(True)
        neighbour = self._table.neighbour.to(self.device)
        offset = self._table.offset_A.to(self.device)
        member_energy, prior_energy, _ = self._run(member_positions, prior_positions, neighbour, offset)
        member_grad, prior_grad = torch.autograd.grad(member_energy.sum() + prior_energy.sum(),
                                                      (member_positions, prior_positions))
        members = -(member_grad + prior_grad.unsqueeze(0))
        energy = member_energy.mean(0) + prior_energy
        members = members.detach().cpu().numpy().astype(np.float64)
        return energy.detach().cpu().numpy().astype(np.float64), members.mean(axis=0), members

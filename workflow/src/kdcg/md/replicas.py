"""Stage 4: the CG MD replicas of a trained kdcg model in LAMMPS (``units real``: Angstrom, fs,
kcal/mol, amu, K): their seeds, schedule, stability checks, restarts and output files.

LAMMPS and the model meet in kdcg.md.lammps_engine (``fix external pf/callback``) and
kdcg.models.model_forces; the replicas of one model may advance together (kdcg.md.replica_batch). The
ensemble model (kdcg.models.ensemble) evaluates all teachers on one shared pair list and applies
their mean force; the spread of the teachers' forces is logged with the thermo output.

A replica r of a model starts from a frame of the training split (kdcg.training.splits) and velocities
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
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdcg.errors import BatchAborted, InputError, StorageError, is_storage_failure
from kdcg.files import link_or_copy, read_json, write_json
from kdcg.md.lammps_engine import attach_model, create_system, lammps_instance, type_masses
from kdcg.models.compiled_forces import open_model_forces
from kdcg.models.model_forces import ModelForces
from kdcg.provenance import comparable, dataset_fingerprint, file_sha256

log = logging.getLogger(__name__)

FINAL_FILES = ("trajectory.lammpstrj", "thermo.csv", "result.json")
THERMO_COLUMNS = ("step", "time_ps", "temperature_K", "potential_kcal_mol", "kinetic_kcal_mol",
                  "total_kcal_mol", "force_spread_kcal_mol_A", "min_distance_A")
STABLE, UNSTABLE = "stable", "unstable"
RESTART_PATTERN = "restart.{step}.bin"  # in run/; the two latest are kept


def restart_files(run: Path) -> dict[int, Path]:
    """The restart files of a replica's run folder, by step."""
    out = {}
    for path in Path(run).glob(RESTART_PATTERN.format(step="*")):
        step = path.name.split(".")[1]
        if step.isdigit():
            out[int(step)] = path
    return out


def pair_state_file(restart: Path) -> Path:
    """Beside restart.<step>.bin: the force engine's pair-table shapes at that step (a compiled
    engine's; kdcg.models.compiled_forces.CompiledModelForces.pair_state)."""
    return restart.with_name(restart.name.removesuffix(".bin") + ".pairs.json")


def _write_restart(lmp, run: Path, step: int, pair_state: dict | None = None) -> None:
    """restart.<step>.bin, atomically, and the engine's pair state beside it; of the earlier
    ones only the latest is kept (replicas killed while writing theirs resume from the step
    they all have)."""
    final = run / RESTART_PATTERN.format(step=step)
    if pair_state is not None:  # written first: a restart file never lacks the state it had
        write_json(pair_state_file(final), pair_state)
    tmp = final.with_name(final.name + ".new")
    lmp.command(f"write_restart {tmp}")
    _check_restart(tmp)
    os.replace(tmp, final)
    earlier = restart_files(run)
    for old in sorted(s for s in earlier if s < step)[:-1]:
        earlier[old].unlink(missing_ok=True)
        pair_state_file(earlier[old]).unlink(missing_ok=True)


def _check_restart(path: Path) -> None:
    """Read a new restart file back (a few ms): LAMMPS's write_restart does not notice a write the
    file system refused, and a truncated restart would end the replica at its resume."""
    scratch = lammps_instance("none")
    try:
        scratch.command(f"read_restart {path}")
    except Exception as err:  # noqa: BLE001 - whatever LAMMPS says of it, the file is not whole
        stat = os.statvfs(path.parent)
        path.unlink(missing_ok=True)
        raise StorageError(path, f"not whole after write_restart ({stat.f_bavail * stat.f_frsize} bytes free on its file"
                                 f" system): LAMMPS: {str(err).strip().splitlines()[0]}") from None
    finally:
        scratch.close()


def shared_restart_step(replica_dirs) -> int:
    """The latest restart step every unfinished replica of a batch has (0: none): replicas that
    advance together resume together, or their shared pair list would differ from the
    uninterrupted run's."""
    shared = None
    for folder in replica_dirs:
        run = Path(folder) / "run"
        if (run / "result.json").is_file():
            continue
        steps = set(restart_files(run))
        shared = steps if shared is None else shared & steps
    return max(shared) if shared else 0


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
    """Frames replicas may start from: the training split (kdcg.training.splits), as in the paper;
    every frame when the config has no training section (kdcg md on a config of its own)."""
    n = len(data["R"])
    if "training" not in cfg:
        log.info("no training section in the config: replicas start from any of the %d frames", n)
        return np.arange(n)
    from kdcg.training.splits import split_frames

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


def run_replica(model: ModelForces, data: dict, md: dict, temperature_K: float, replica: int,
                out_dir: Path, fingerprint: dict | None = None, name: str = "model", frames=None,
                evaluate=None, resume_step: int | None = None) -> dict:
    """Run (or resume, or just report) one replica; returns its result record. ``evaluate``:
    the replica's forces from a batch of replicas (kdcg.md.replica_batch) instead of the model alone.
    ``resume_step``: the restart to resume from (default: the latest; 0 or one it lacks: start
    over)."""
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
    restarts = restart_files(run)
    if resume_step is None:
        resume_step = max(restarts, default=0)
    for later in [s for s in restarts if s > resume_step or resume_step not in restarts]:
        dropped = restarts.pop(later)
        dropped.unlink()
        pair_state_file(dropped).unlink(missing_ok=True)
    thermo_path, dump_path = run / "thermo.csv", run / "trajectory.lammpstrj"
    lmp = lammps_instance(run / "log.lammps")
    try:
        if resume_step in restarts:
            lmp.command("atom_modify map array sort 0 0.0")
            lmp.command(f"read_restart {restarts[resume_step]}")
            state_file = pair_state_file(restarts[resume_step])
            restore = getattr(model, "restore_pair_state", None)
            if restore is not None and state_file.is_file():  # the shapes the uninterrupted run has here
                restore(read_json(state_file, "the pair state of a restart"))
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
            # pbc yes: every frame wrapped into the box. LAMMPS wraps its own coordinates only when it
            # rebuilds its lists, and a resumed run's set-up wraps them at the restart frame: an
            # unwrapped frame there would differ from the uninterrupted run's
            "dump_modify traj sort id append yes format float %.5f pbc yes",
        ])
        return _integrate(lmp, callback, sched, md, temperature_K, box, run, out_dir, start, name, replica,
                          {"frame": frame, "velocity_seed": velocity_seed, "species_names": model.species_names,
                           "n_beads": len(species), "box_A": box.tolist(), "model": name, "replica": replica,
                           "n_members": model.n_members, "dataset": comparable(dataset_fingerprint(data))})
    except OSError as err:  # thermo.csv, result.json, a restart's rename: the file system said no
        raise StorageError(err.filename or run, err.strerror or str(err)) from None
    except Exception as err:
        if isinstance(err, (InputError, StorageError, BatchAborted)) or not is_storage_failure(str(err)):
            raise
        raise _lammps_storage_error(err, run) from None  # write_restart, read_restart
    finally:
        lmp.close()


def _lammps_storage_error(err: Exception, run: Path) -> StorageError:
    """LAMMPS's words for a file it could not write, naming the file where they say which."""
    message = str(err).strip()
    path = run / "trajectory.lammpstrj" if "dump" in message.lower() else run
    return StorageError(path, f"LAMMPS: {message}")


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
                if is_storage_failure(str(err)):  # a full disk is no instability: the job fails, nothing recorded
                    raise _lammps_storage_error(err, run) from None
                status, reason = UNSTABLE, "LAMMPS: " + str(err).strip().splitlines()[0]
                break
            callback.raise_if_aborted()
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
                state = getattr(callback.engine, "pair_state", None)
                _write_restart(lmp, run, step, state() if state is not None else None)
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
    for path in restart_files(run).values():
        path.unlink(missing_ok=True)
        pair_state_file(path).unlink(missing_ok=True)
    return read_json(out_dir / "result.json", "replica result")


def one_thread_numba_kernels() -> None:
    """Run hippynn's numba kernels on one thread in this process, whatever --threads says, as
    the `kdcg md` job does (kdcg.cli.limit_threads sets its environment before numba loads; an
    in-process call comes too late for that). Replicas evaluated together take this thread's
    count into their own threads (kdcg.md.replica_batch.run_together). Three differing in-process
    runs were first put down to numba's threads here; a cause found later: a replica that asked
    for forces before the other had joined the batch (fixed in run_together)."""
    try:
        import numba
    except ImportError:  # hippynn then runs its pytorch kernels
        return
    numba.set_num_threads(1)


def run_replicas(model_path: Path, dataset_path: Path, cfg: dict, replicas: list[int], out_dir: Path,
                 threads: int | None = None) -> list[dict]:
    """Run several replicas of one model in this process (the model is loaded once)."""
    import torch

    from kdcg.cg.mapping import load_dataset

    if threads:
        torch.set_num_threads(threads)
    one_thread_numba_kernels()
    md = cfg["md"]
    data = load_dataset(dataset_path)
    half_box = 0.5 * float(np.min(np.diag(np.asarray(data["cell"]).reshape(-1, 3, 3)[0])))
    model = open_model_forces(model_path, md["engine"], data=data, steps=Schedule.from_config(md).total_steps)
    log.info("%s: forces through the %s engine (md.engine: %s)", Path(model_path).parent.name,
             type(model).__name__, md["engine"])
    # the pair finder needs cutoff + skin below half the box
    skin = max(0.0, min(md["pair_skin_A"], half_box - model.cutoff_A - 1e-3))
    if skin < md["pair_skin_A"]:
        log.warning("pair skin reduced from %.3f to %.3f A: cutoff + skin must stay below half the box (%.3f A)",
                    md["pair_skin_A"], skin, half_box)
    model.set_pair_skin(skin)
    if list(model.species_names) != [str(s) for s in data["species_names"]]:
        raise InputError(model_path, f"model species {model.species_names} differ from the dataset's {list(data['species_names'])}")
    # the weights, not the file bytes: an identical retraining does not restart the replicas
    fingerprint = {"model": model.record.get("weights_sha256") or file_sha256(Path(model_path)),
                   "dataset": comparable(dataset_fingerprint(data))}
    name = Path(model_path).parent.name
    frames = start_frames(data, cfg)

    def runner(r, resume_step=None):
        return lambda evaluate=None: run_replica(model, data, md, cfg["system"]["temperature_K"], r,
                                                 Path(out_dir) / f"replica-{r}", fingerprint, name=name, frames=frames,
                                                 evaluate=evaluate, resume_step=resume_step)

    if md["evaluate_replicas_together"] and len(replicas) > 1:
        from kdcg.md.replica_batch import ReplicaRendezvous, run_together

        species = np.asarray(data["Z"]).reshape(-1, len(data["R"][0]))[0]
        cell = np.asarray(data["cell"], dtype=np.float64).reshape(-1, 3, 3)[0]
        rendezvous = ReplicaRendezvous(model, species, cell)
        log.info("%s: replicas %s advance together, one batched model evaluation per step", name, replicas)
        shared = shared_restart_step([Path(out_dir) / f"replica-{r}" for r in replicas])
        results = run_together([(r, runner(r, shared)) for r in replicas], rendezvous)
        if rendezvous.batch_sizes:
            log.info("%s: %d batched evaluations, %.2f replicas each on average", name, len(rendezvous.batch_sizes),
                     float(np.mean(rendezvous.batch_sizes)))
        return results
    return [runner(r)() for r in replicas]

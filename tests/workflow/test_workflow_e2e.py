"""One small real run: Packmol -> GROMACS EM/NVT/NVT -> CG dataset through Snakemake, with
the production run killed half way and resumed from its checkpoint by the rerun."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from conftest import snakemake, venv_env, workflow_copy
from kdcg.cg import mapping

pytestmark = pytest.mark.e2e


def _figures_tables_and_report(wf, results, configfile: str) -> str:
    """Every figure of the run is a PNG and every table is written; the Snakemake report builds.
    Returns the report's HTML."""
    from kdcg.report.tables import FIGURES, TABLES

    for fig in FIGURES:
        assert (results / "figures" / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", fig
    for table in TABLES:
        assert (results / "tables" / table).is_file()
    snakemake(wf, "--report", str((results / "report.html").relative_to(wf)), "--configfile", configfile)
    return (results / "report.html").read_text(errors="replace")


def _wait_for(predicate, timeout_s, proc):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def test_tiny_workflow_to_dataset_with_a_killed_production(tmp_path):
    wf = workflow_copy(tmp_path)
    cfg = yaml.safe_load((wf / "tests/config/tiny.yaml").read_text())
    cfg["aa_md"]["production_ps"] = 30.0  # long enough to be killed half way (~10 s here)
    cfg["aa_md"]["checkpoint_interval_min"] = 0.005  # a checkpoint every 0.3 s
    (wf / "e2e.yaml").write_text(yaml.safe_dump(cfg))
    prod_run = wf / "results-tiny/aa/nvt_prod/run"

    # 1. start the workflow and kill it (Snakemake, kdcg and mdrun) once production has checkpointed
    cmd = [sys.executable, "-m", "snakemake", "results-tiny/cg/dataset.npz", "--cores", "2", "--configfile", "e2e.yaml"]
    proc = subprocess.Popen(cmd, cwd=wf, env=venv_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    def checkpointed_midway():
        log = prod_run / "nvt_prod.log"
        return (prod_run / "nvt_prod.cpt").is_file() and log.is_file() and "Writing checkpoint" in log.read_text(errors="replace")
    try:
        assert _wait_for(checkpointed_midway, 240, proc), proc.stdout.read().decode()[-3000:] if proc.poll() is not None else "timeout"
        time.sleep(1.0)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (wf / "results-tiny/aa/nvt_prod/nvt_prod.trr").exists(), "production finished before it could be killed"
    assert not (wf / "results-tiny/cg/dataset.npz").exists()

    # 2. rerun as a user would after a SIGKILL (unlock, then rerun the incomplete job):
    #    kdcg continues mdrun from the checkpoint
    snakemake(wf, "--unlock", "--configfile", "e2e.yaml")
    snakemake(wf, "results-tiny/cg/dataset.npz", "--cores", "2", "--rerun-incomplete", "--configfile", "e2e.yaml")
    log = (wf / "results-tiny/logs/gromacs_nvt_prod.log").read_text()
    assert "continuing the interrupted run" in log
    perf = json.loads((wf / "results-tiny/aa/nvt_prod/nvt_prod.perf.json").read_text())
    assert perf["resumed"] is True and perf["ns_per_day"] > 0
    # timed as a whole: both invocations, up to the checkpoint the second one resumed from
    assert perf["segments"] == 2 and perf["simulated_ps"] == 30.0
    assert perf["ns_per_day"] == pytest.approx(0.030 / perf["wall_s"] * 86400.0, rel=1e-3)
    segments = json.loads((prod_run / "segments.json").read_text())
    assert segments[0]["useful_wall_s"] > 0 and perf["wall_s"] > segments[0]["useful_wall_s"]
    md_log = (prod_run / "nvt_prod.log").read_text()
    assert "Restarting from checkpoint, appending to previous log file" in md_log
    # the earlier energy minimisation and equilibration were not redone
    assert "continuing" not in (wf / "results-tiny/logs/gromacs_nvt_equil.log").read_text()

    # 3. the dataset: every frame exactly once, in order, with sane content
    d = mapping.load_dataset(wf / "results-tiny/cg/dataset.npz")
    np.testing.assert_allclose(d["time_ps"], np.arange(0.0, 30.0 + 1e-9, 0.5), atol=1e-6)
    n_frames = 61
    assert d["R"].shape == (n_frames, 80, 3) and d["F"].shape == (n_frames, 80, 3)
    assert d["species_names"].tolist() == ["Cho", "Cl", "urea"]
    assert np.bincount(d["Z"][0]).tolist() == [0, 20, 20, 40]
    np.testing.assert_allclose(sorted(set(np.round(d["masses"], 2))), [35.45, 60.06, 104.17])
    assert (d["R"] >= 0).all() and (d["R"] < 19.32 + 1e-4).all()
    assert np.isfinite(d["F"]).all()
    f_rms = np.sqrt((d["F"] ** 2).mean())
    assert 1.0 < f_rms < 100.0  # kcal/mol/A: a liquid at 298 K, not kJ/mol/nm
    # Newton's third law: the net force on the box is small next to the bead forces
    net = np.abs(d["F"].sum(axis=1)).max()
    assert net < 0.05 * f_rms * 80
    perf_rows = (wf / "results-tiny/aa/performance.tsv").read_text().splitlines() if (wf / "results-tiny/aa/performance.tsv").exists() else None
    assert perf_rows is None  # only the named target and what it needs were built

    # 4. one student by its file: only its training job and what it needs (prior, its teacher's job,
    #    its teacher's labels); training.models_per_job 2: the teachers train as one job, and the
    #    student with the first of its teacher's other single-teacher students
    assert cfg["training"]["models_per_job"] == 2
    out = snakemake(wf, "results-tiny/models/student-st_ei_ft-2/model.pt", "--cores", "2", "--configfile", "e2e.yaml")
    text = out.stdout + out.stderr
    assert "batch=teachers-1" in text and "batch=students-of-teacher-2-1" in text and "ensemble_labels" not in text
    assert sorted(p.name for p in (wf / "results-tiny/models").iterdir()) == \
        ["jobs", "prior.json", "student-st_ei_faa-2", "student-st_ei_ft-2", "teacher-1", "teacher-2"]
    assert sorted(p.name for p in (wf / "results-tiny/labels").iterdir()) == ["teacher-2.npz"]
    batch_log = (wf / "results-tiny/logs/train-students-of-teacher-2-1.log").read_text()
    assert batch_log.index("[kdcg] model 1 of 2: st_ei_faa") < batch_log.index("[kdcg] model 2 of 2: st_ei_ft")

    # 5. the default target: the performance table, 2 teachers, their labels, the ensemble labels,
    #    all 9 variants (3 single-teacher ones per teacher), the ensemble model and 2 MD replicas of
    #    every model; nothing already built reruns
    out = snakemake(wf, "--cores", "2", "--configfile", "e2e.yaml", "--set-threads", "train_models=1",
                    "md_replicas=1")
    assert "nvt_production" not in out.stdout + out.stderr.split("Job stats")[0]
    rows = [r.split("\t") for r in (wf / "results-tiny/aa/performance.tsv").read_text().splitlines()]
    assert [r[0] for r in rows] == ["stage", "em", "nvt_equil", "nvt_prod"]
    models = wf / "results-tiny/models"
    expected = {"teacher-1", "teacher-2", "student-se_ft_faa", "student-se_ei_faa", "student-se_ei_ft", "student-se_ei_ft_faa",
                "student-se_e_ft_faa", "student-se_e_ei_ft_faa"}
    expected |= {f"student-{v}-{s}" for v in ("st_ei_faa", "st_ei_ft", "st_ei_ft_faa") for s in (1, 2)}
    assert {p.name for p in models.iterdir() if p.is_dir()} == expected | {"ensemble", "jobs"}
    for name in expected | {"ensemble"}:
        assert (models / name / "mliap.pt").is_file()
    for name in expected:
        metrics = json.loads((models / name / "metrics.json").read_text())
        assert np.isfinite(metrics["test_forces_vs_aa"]["rmse"]) and metrics["epochs"] >= 1
        assert (models / name / "model.pt").is_file()
    # one log per training job: 2 teachers; 3 single-teacher students per teacher in jobs of 2 and
    # 1; 6 ensemble students in 3 jobs
    assert sorted(p.name for p in (wf / "results-tiny/logs").glob("train-*.log")) == \
        ["train-ensemble-students-1.log", "train-ensemble-students-2.log", "train-ensemble-students-3.log",
         "train-students-of-teacher-1-1.log", "train-students-of-teacher-1-2.log", "train-students-of-teacher-2-1.log",
         "train-students-of-teacher-2-2.log", "train-teachers-1.log"]
    teacher_log = (wf / "results-tiny/logs/train-teachers-1.log").read_text()
    assert teacher_log.index("[kdcg] model 1 of 2: teacher seed 1") < teacher_log.index("[kdcg] model 2 of 2: teacher seed 2")
    assert re.search(r"\[kdcg\] epoch 0 done \(1 of at most \d+\): .* elapsed \d+ min \d\d s, at most \d+ min \d\d s left",
                     teacher_log), teacher_log[-2000:]
    # known-harmless noise stays out of the logs
    assert "Sparse invariant checks" not in teacher_log and "netCDF4 is not available" not in teacher_log
    for stage in ("em", "nvt_equil", "nvt_prod"):
        gmx_log = (wf / f"results-tiny/logs/gromacs_{stage}.log").read_text()
        assert "MPI_Init" not in gmx_log and "ORTE_ERROR_LOG" not in gmx_log and ".gromacswrapper" not in gmx_log
    ens = np.load(wf / "results-tiny/labels/ensemble.npz")
    t1, t2 = np.load(wf / "results-tiny/labels/teacher-1.npz"), np.load(wf / "results-tiny/labels/teacher-2.npz")
    np.testing.assert_allclose(ens["forces"], (t1["forces"].astype(float) + t2["forces"]) / 2, rtol=1e-5, atol=1e-5)
    assert ens["forces"].shape == (n_frames, 80, 3)

    # 6. MD: two replicas of every model, the ensemble included, each with a status record
    sched_steps = cfg["md"]["equilibration_ps"] + cfg["md"]["n_samples"] * cfg["md"]["sample_interval_ps"]
    n_frames_md = cfg["md"]["n_samples"] + round(cfg["md"]["equilibration_ps"] / cfg["md"]["sample_interval_ps"]) + 1
    for name in expected | {"ensemble"}:
        for r in (1, 2):
            folder = wf / f"results-tiny/md/{name}/replica-{r}"
            res = json.loads((folder / "result.json").read_text())
            assert res["status"] in ("stable", "unstable") and res["replica"] == r and res["model"] == name
            if res["status"] == "stable":
                assert res["time_ps"] == pytest.approx(sched_steps) and res["ns_per_day"] > 0
                assert (folder / "trajectory.lammpstrj").read_text().count("ITEM: TIMESTEP") == n_frames_md
            else:
                assert res["reason"]
    ens_thermo = np.genfromtxt(wf / "results-tiny/md/ensemble/replica-1/thermo.csv", delimiter=",", names=True)
    assert (ens_thermo["force_spread_kcal_mol_A"][1:] > 0).all()  # the teachers' spread, logged
    first = [json.loads((wf / f"results-tiny/md/teacher-1/replica-{r}/result.json").read_text()) for r in (1, 2)]
    assert (first[0]["frame"], first[0]["velocity_seed"]) != (first[1]["frame"], first[1]["velocity_seed"])

    # 7. analysis, tables, figures and the report

    for name in expected | {"ensemble"}:
        ana = json.loads((wf / f"results-tiny/md/{name}/replica-1/analysis.json").read_text())
        if ana["status"] == "stable":
            assert set(ana["tae"]) == {"rdf", "adf", "cdf"} and len(ana["tae"]["rdf"]) == 6 and len(ana["tae"]["adf"]) == 9
            eq = ana["equilibration"]
            assert eq["t_used_ps"] == cfg["md"]["equilibration_ps"] and isinstance(eq["equilibrated"], bool)
            assert ana["n_frames"] == eq["n_frames_used"] == cfg["md"]["n_samples"]
            assert ana["cdf_windows"]["windows"][0]["t_start_ps"] == 0.0  # time-resolved CDFs from t = 0
    # the AA reference's own sampling noise (the TAE figures' baseline) and the AA energies
    reference = json.loads((wf / "results-tiny/analysis/aa_reference.json").read_text())
    noise = reference["sampling_noise_tae"]
    assert noise["n_frames"] == [30, 31] and set(noise["rdf"]) == set(reference["rdf"])
    assert all(0 < v < 10 for v in noise["rdf"].values())
    with open(wf / "results-tiny/aa/energy.csv") as fh:
        energy = list(csv.DictReader(fh))
    # energies every 1 ps in equilibration, every output frame in production (kdcg.aa.gromacs.mdp_text)
    for stage, length, every in (("nvt_equil", cfg["aa_md"]["equilibration_ps"], 1.0),
                                 ("nvt_prod", cfg["aa_md"]["production_ps"], cfg["aa_md"]["output_interval_ps"])):
        t = [float(r["time_ps"]) for r in energy if r["stage"] == stage]
        np.testing.assert_allclose(t, np.arange(0.0, length + 1e-9, every), atol=1e-6)
    assert all(float(r["potential_kcal_mol"]) == pytest.approx(float(r["potential_kJ_mol"]) / 4.184) for r in energy)
    student = json.loads((models / "student-se_ei_ft_faa/metrics.json").read_text())
    offset_free = student["test_energies_vs_teacher_offset_free"]
    assert offset_free["n_frames"] == len(student["test_frames"]) and offset_free["bead_energies"]["r2"] <= 1.0
    tae_rows = (wf / "results-tiny/tables/tae.csv").read_text().splitlines()
    assert tae_rows[0] == "model,family,variant,seed,replica,status,quantity,key,tae" and len(tae_rows) > 1
    stab = (wf / "results-tiny/tables/stability.csv").read_text().splitlines()
    assert len(stab) == 1 + 2 * len(expected | {"ensemble"})
    perf = (wf / "results-tiny/tables/performance.csv").read_text()
    assert "all-atom (GROMACS)" in perf and "family,S_E" in perf
    html = _figures_tables_and_report(wf, wf / "results-tiny", "e2e.yaml")
    assert "tae_rdf.png" in html and "stability.csv" in html
    # the front page: what was run, what it can show, headline figures, the paper's tables as HTML
    for text in ("What was run", "e2e.yaml", "results-tiny/", "commit", "What these numbers can show",
                 "cannot show them", "data:image/png;base64,", "Table 4: CG MD speed", "Tables 2 and 3",
                 "Table 1: model hyperparameters", "se_e_ei_ft_faa", "1. CG boxes after MD (Fig. 2)",
                 "2. Training (Fig. 3)", "7. Students' energies (Fig. S3)", "9. Tables (CSV)"):
        assert text in html, text

    # 7b. the finished run, moved elsewhere (a cluster's scratch), has nothing to redo
    moved = tmp_path.parent / f"{tmp_path.name}-moved"
    shutil.move(wf, moved)
    wf = moved
    out = snakemake(wf, "-n", "--cores", "2", "--configfile", "e2e.yaml")
    assert "Nothing to be done" in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]
    # ... nor after a change to keys that decide no weight and no trajectory (kdcg.config.write_snapshot);
    # the dry run writes nothing (a run that has jobs to do writes the snapshot for them)
    before = (wf / "results-tiny/config/training.yaml").read_bytes()
    out = snakemake(wf, "-n", "--cores", "2", "--configfile", "e2e.yaml", "--config",
                    "training={hippynn_plots: true, train_eval_fraction: 0.5}")
    assert "Nothing to be done" in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]
    assert (wf / "results-tiny/config/training.yaml").read_bytes() == before

    # 8. one replica's lost file by naming it: published again from its run/ folder; its batch job
    #    (both replicas) does not rerun
    batch_log = (wf / "results-tiny/logs/md-teacher-1-replicas-1-2.log").read_text()
    (wf / "results-tiny/md/teacher-1/replica-2/result.json").unlink()
    out = snakemake(wf, "results-tiny/md/teacher-1/replica-2/result.json", "--cores", "2", "--configfile", "e2e.yaml")
    assert "rule md_replica:" in out.stdout + out.stderr and "rule md_replicas:" not in out.stdout + out.stderr
    assert (wf / "results-tiny/logs/md-teacher-1-replicas-1-2.log").read_text() == batch_log
    again = json.loads((wf / "results-tiny/md/teacher-1/replica-2/result.json").read_text())
    assert (again["frame"], again["velocity_seed"]) == (first[1]["frame"], first[1]["velocity_seed"])
    # ... and one whose work folder is gone too: one line naming its job's record; --forcerun runs the job again
    lost = "results-tiny/md/student-se_ft_faa/replica-2"
    shutil.rmtree(wf / lost / "run")
    (wf / lost / "result.json").unlink()
    proc = snakemake(wf, f"{lost}/result.json", "--cores", "2", "--configfile", "e2e.yaml", check=False)
    assert proc.returncode != 0 and (f"kdcg error: {lost}/run/result.json is gone, but its job's record "
                                     "results-tiny/md/student-se_ft_faa/jobs/md-1-2.json says the job finished: run "
                                     "the job again (add --forcerun md_replicas)") in proc.stderr, proc.stderr[-3000:]
    snakemake(wf, f"{lost}/result.json", "--cores", "2", "--configfile", "e2e.yaml", "--forcerun", "md_replicas")
    assert json.loads((wf / lost / "result.json").read_text())["replica"] == 2

    # 9. the README's forced rerun of a finished training rebuilds the same weights without training
    before = json.loads((wf / "results-tiny/models/teacher-1/metrics.json").read_text())
    snakemake(wf, "results-tiny/models/teacher-1/model.pt", "--cores", "2", "--configfile", "e2e.yaml", "--forcerun",
              "train_models")
    after = json.loads((wf / "results-tiny/models/teacher-1/metrics.json").read_text())
    assert (wf / "results-tiny/logs/train-teachers-1.log").read_text().count("training already finished") == 2
    assert after["weights_sha256"] == before["weights_sha256"] and after["test_forces_vs_aa"] == before["test_forces_vs_aa"]
    # ... so its MD, re-triggered by the newer model file, keeps the replicas it has (keyed by the weights)
    result = (wf / "results-tiny/md/teacher-1/replica-1/result.json").read_text()
    snakemake(wf, "results-tiny/md/teacher-1/replica-1/result.json", "--cores", "2", "--configfile", "e2e.yaml")
    log = (wf / "results-tiny/logs/md-teacher-1-replicas-1-2.log").read_text()
    assert "teacher-1 replica 1: already finished" in log and "inputs changed" not in log
    assert (wf / "results-tiny/md/teacher-1/replica-1/result.json").read_text() == result


def test_study_config_runs_its_stages_on_the_tiny_system(tmp_path):
    """config/study.yaml as shipped (network, training schedule, its student variants, 5 fs MD
    with 4 replicas evaluated together, analysis) on the tiny system, with only the lengths cut:
    every stage runs, the models are exactly the study's, and the report says what was run."""
    import torch

    from kdcg.variants import model_names

    wf = workflow_copy(tmp_path)
    study = yaml.safe_load((wf / "config/study.yaml").read_text())
    tiny = yaml.safe_load((wf / "tests/config/tiny.yaml").read_text())
    cfg = {**study, "results_dir": "results-study-tiny"}
    for section in ("system", "packmol", "aa_md"):
        cfg[section] = tiny[section]
    cfg["training"] = {**study["training"], "max_epochs": 2}
    cfg["md"] = {**study["md"], "equilibration_ps": 0.1, "n_samples": 4, "sample_interval_ps": 0.05,
                 "thermo_interval_steps": 5, "restart_interval_steps": 20}
    (wf / "study-tiny.yaml").write_text(yaml.safe_dump(cfg))

    snakemake(wf, "--cores", "2", "--configfile", "study-tiny.yaml")
    results = wf / "results-study-tiny"
    trained = model_names(study["training"]["teacher_seeds"], study["training"]["student_variants"])
    assert len(trained) == 12  # 4 teachers, st_ei_ft_faa x 4, 4 ensemble variants
    assert {p.name for p in (results / "models").iterdir() if p.is_dir()} == {*trained, "ensemble", "jobs"}
    for name in trained:
        metrics = json.loads((results / "models" / name / "metrics.json").read_text())
        assert 1 <= metrics["epochs"] <= 2
        # training.engine auto: the study's one-layer Hipnn on a CPU trains through the numba kernels
        assert metrics["engine"] == ("kernels" if not torch.cuda.is_available() else "hippynn"), name
    steps = round(0.3 * 1000 / study["md"]["timestep_fs"])
    for name in [*trained, "ensemble"]:
        for r in range(1, study["md"]["replicas"] + 1):
            res = json.loads((results / f"md/{name}/replica-{r}/result.json").read_text())
            assert res["status"] in ("stable", "unstable")
            if res["status"] == "stable":
                assert res["step"] == steps and res["time_ps"] == pytest.approx(0.3)
            assert (results / f"md/{name}/replica-{r}/analysis.json").is_file()
    log = (results / "logs/md-ensemble-replicas-1-4.log").read_text()
    assert "together" in log  # md.evaluate_replicas_together of the study
    for fig in ("tae_rdf.png", "cdf_time.png", "energy_r2.png"):
        assert (results / "figures" / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", fig
    # the findings judged in their units, the study's 4 teachers as models, a verdict on every test
    with open(results / "tables/findings.csv") as fh:
        found = list(csv.DictReader(fh))
    ensemble = [r for r in found if r["comparison"] == "ensemble vs its teachers"]
    assert ensemble and all(r["unit"] == "trained model" and r["b_models"] == "4" for r in ensemble)
    assert all(r["verdict"] in ("reproduced", "contradicted", "not resolved") for r in found if r["test"])
    snakemake(wf, "--report", "results-study-tiny/report.html", "--configfile", "study-tiny.yaml")
    html = (results / "report.html").read_text(errors="replace")
    for text in ("study-tiny.yaml", "hippynn Hipnn, 16 features", "4 teachers, the ensemble, 4 single-teacher and 4 ensemble students"):
        assert text in html, text


def test_ethaline_runs_every_stage_from_its_config_alone(tmp_path):
    """A second solvent by configuration alone (tests/config/tiny-ethaline.yaml, shipped): ethylene
    glycol's topology (with its published exclusions) through GROMACS, the mapping, the prior, all
    teachers, labels and students, MD, the analyses over ethaline's own species, figures, report."""
    from kdcg.variants import model_names

    wf = workflow_copy(tmp_path)
    cfg = yaml.safe_load((wf / "tests/config/tiny-ethaline.yaml").read_text())
    snakemake(wf, "--cores", "2", "--configfile", "tests/config/tiny-ethaline.yaml")
    results = wf / "results-tiny-ethaline"

    top = (results / "aa/toppar/ethylene_glycol.itp").read_text()
    assert "[ exclusions ]" in top and "[ pairs ]" not in top  # pairs_14: false, as for reline
    d = mapping.load_dataset(results / "cg/dataset.npz")
    assert d["species_names"].tolist() == ["Cho", "Cl", "EG"] and np.bincount(d["Z"][0]).tolist() == [0, 20, 20, 40]
    np.testing.assert_allclose(sorted(set(np.round(d["masses"], 2))), [35.45, 62.07, 104.17])
    assert (d["R"] >= 0).all() and (d["R"] < 19.88 + 1e-4).all() and np.isfinite(d["F"]).all()
    assert 1.0 < np.sqrt((d["F"] ** 2).mean()) < 100.0  # kcal/mol/A
    prior = json.loads((results / "models/prior.json").read_text())
    assert prior["species_names"] == ["Cho", "Cl", "EG"] and np.array(prior["taper_A"]).shape == (3, 3)

    trained = model_names(cfg["training"]["teacher_seeds"], cfg["training"]["student_variants"])
    assert len(trained) == 2 + 3 * 2 + 6
    reference = json.loads((results / "analysis/aa_reference.json").read_text())
    pairs = {"Cho-Cho", "Cho-Cl", "Cho-EG", "Cl-Cl", "Cl-EG", "EG-EG"}
    assert set(reference["rdf"]) == pairs and set(reference["cdf"]) == {"Cho", "Cl", "EG"}
    assert {k for k in reference["adf"] if k.startswith("EG-EG-EG")} == {"EG-EG-EG rc=6", "EG-EG-EG rc=6.5",
                                                                        "EG-EG-EG rc=7.5"}
    stable = 0
    for name in [*trained, "ensemble"]:
        assert (results / "models" / name / "mliap.pt").is_file()
        for r in (1, 2):
            res = json.loads((results / f"md/{name}/replica-{r}/result.json").read_text())
            assert res["status"] in ("stable", "unstable")
            ana = json.loads((results / f"md/{name}/replica-{r}/analysis.json").read_text())
            if ana["status"] == "stable":
                stable += 1
                assert set(ana["tae"]["rdf"]) == pairs and set(ana["tae"]["cdf"]) == {"Cho", "Cl", "EG"}
    assert stable > 0
    assert ",rdf,EG-EG," in (results / "tables/tae.csv").read_text()
    html = _figures_tables_and_report(wf, results, "tests/config/tiny-ethaline.yaml")
    assert "ethaline: 20 Cho, 20 Cl, 40 EG" in html and "tae_rdf.png" in html

"""The strict config schema: every shipped config is valid, bad keys are named in one line."""

from __future__ import annotations

import copy
import shutil
import time
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, snakemake, workflow_copy
from kdcg import config
from kdcg.errors import InputError


@pytest.mark.parametrize("path", ["config/config.yaml", "config/paper.yaml", "config/study.yaml", "tests/config/tiny.yaml",
                                  "config/ethaline.yaml", "config/glyceline.yaml", "tests/config/tiny-ethaline.yaml",
                                  "config/study.yaml + config/pilot.yaml",
                                  "config/study.yaml + config/pilot.yaml + config/pilot-quad.yaml",
                                  "config/study.yaml + config/pilot.yaml + config/pilot-study-rule.yaml",
                                  "config/study.yaml + config/pilot.yaml + config/pilot-study-rule.yaml"
                                  " + config/pilot-dataset-2.yaml",
                                  "config/study.yaml + config/pilot.yaml + config/pilot-study-rule.yaml"
                                  " + config/pilot-dataset-2.yaml + config/pilot-dataset-2-2fs.yaml",
                                  "config/study.yaml + config/pilot.yaml + config/pilot-2fs.yaml",
                                  "config/study.yaml + config/pilot.yaml + config/pilot-2fs.yaml + config/pilot-2fs-control.yaml",
                                  "config/study.yaml + config/pilot.yaml + config/pilot-rerun.yaml",
                                  "config/study.yaml + config/study-300ps.yaml",
                                  "config/study.yaml + config/study-300ps.yaml + config/study-300ps-2fs.yaml",
                                  "config/paper.yaml + config/paper-smoke.yaml"])
def test_shipped_configs_are_valid(path):
    cfg = config.load_merged([REPO / p for p in path.split(" + ")])  # an overlay with the configs it extends
    assert cfg["system"]["molecules"][0]["species"] == "Cho"


def test_the_study_runs_its_cg_md_to_100_ps():
    """The third run's one change (config/README.md): 100 ps per replica, where the paper's 100-300 ps begin."""
    md = config.load(REPO / "config/study.yaml")["md"]
    assert md["equilibration_ps"] + md["n_samples"] * md["sample_interval_ps"] == 100.0
    assert md["timestep_fs"] == 5.0 and md["replicas"] == 4


def test_the_main_study_is_the_design_docs_study_md_fixed():
    """make study: the 100 ps study's system and network, the paper's 8 teachers and training rule,
    S_T for every seed and the ensemble's student, 4 replicas x 300 ps at 5 fs from t = 0."""
    from kdcg.variants import model_names

    cfg = config.load_merged([REPO / "config/study.yaml", REPO / "config/study-300ps.yaml"])
    base = config.load(REPO / "config/study.yaml")
    tr, md = cfg["training"], cfg["md"]
    assert cfg["results_dir"] == "results-study" and cfg["model"] == base["model"] and cfg["aa_md"] == base["aa_md"]
    assert tr["teacher_seeds"] == list(range(1, 9))
    assert (tr["max_epochs"], tr["plateau_patience"], tr["termination_patience"], tr["min_improvement"]) == (500, 10, 25, 0.0)
    names = model_names(tr["teacher_seeds"], tr["student_variants"])
    assert len(names) == 17 and "student-se_ei_ft_faa" in names and "student-st_ei_ft_faa-8" in names
    assert md["equilibration_ps"] + md["n_samples"] * md["sample_interval_ps"] == 300.0
    assert md["timestep_fs"] == 5.0 and md["replicas"] == 4 and cfg["analysis"]["cdf_windows"] == 6
    assert base["results_dir"] == "results-study-100ps"  # the 100 ps study alone does not write into the main study's folder


def test_paper_config_is_the_paper():
    cfg = config.load(REPO / "config/paper.yaml")
    counts = {m["species"]: m["count"] for m in cfg["system"]["molecules"]}
    assert counts == {"Cho": 250, "Cl": 250, "urea": 500}
    assert cfg["system"]["box_edge_A"] == 44.84 and cfg["system"]["temperature_K"] == 298.1
    md = cfg["aa_md"]
    assert (md["equilibration_ps"], md["production_ps"], md["output_interval_ps"]) == (5000, 1000, 1.0)
    assert (md["timestep_fs"], md["thermostat_tau_ps"], md["cutoff_nm"], md["lj_treatment"]) == (2.0, 0.5, 1.6, "pme")


# what config/paper-smoke.yaml may change: durations (shortened only) and how jobs are packed
SMOKE_DURATIONS = {("aa_md", "equilibration_ps"), ("aa_md", "production_ps"), ("training", "max_epochs"),
                   ("md", "equilibration_ps"), ("md", "sample_interval_ps"), ("md", "n_samples")}
SMOKE_PACKING = {("training", "models_per_job"), ("md", "replicas_per_job")}


def _leaves(tree, prefix=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, (*prefix, key))
    else:
        yield prefix, tree


def test_paper_smoke_changes_only_durations_and_packing():
    """The smoke run proves the paper's sizes: every other key of the merged config equals paper.yaml's."""
    paper = config.load(REPO / "config/paper.yaml")
    merged = config.load_merged([REPO / "config/paper.yaml", REPO / "config/paper-smoke.yaml"])
    overlay = yaml.safe_load((REPO / "config/paper-smoke.yaml").read_text())
    changed = {key for key, _ in _leaves(overlay)} - {("results_dir",)}
    assert changed <= SMOKE_DURATIONS | SMOKE_PACKING, changed - SMOKE_DURATIONS - SMOKE_PACKING
    assert merged["results_dir"] != paper["results_dir"]
    unchanged = {k: v for k, v in _leaves(paper) if k not in changed and k != ("results_dir",)}
    assert unchanged == {k: v for k, v in _leaves(merged) if k in unchanged}
    for section, key in changed & SMOKE_DURATIONS:
        assert merged[section][key] <= paper[section][key], (section, key)
    # each job still covers the frames and CDF windows that the analyses ask for
    md = merged["md"]
    assert md["n_samples"] >= merged["analysis"]["cdf_windows"]
    assert merged["aa_md"]["production_ps"] / merged["aa_md"]["output_interval_ps"] >= merged["training"]["split_blocks"]


def _error(cfg) -> str:
    with pytest.raises(InputError) as err:
        config.validate(cfg, "my.yaml")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("my.yaml: ")
    return msg


def test_unknown_keys_are_named():
    cfg = config.load(REPO / "tests/config/tiny.yaml")
    bad = copy.deepcopy(cfg)
    bad["tempreature"] = 300
    assert "unknown config key 'tempreature'" in _error(bad)
    bad = copy.deepcopy(cfg)
    bad["aa_md"]["time_step_fs"] = 2
    msg = _error(bad)
    assert "'time_step_fs'" in msg and "in 'aa_md'" in msg


def test_ill_typed_and_out_of_range_values_are_named():
    cfg = config.load(REPO / "tests/config/tiny.yaml")
    bad = copy.deepcopy(cfg)
    bad["packmol"]["seed"] = "one"
    assert "'packmol.seed'" in _error(bad) and "integer" in _error(bad)
    bad = copy.deepcopy(cfg)
    bad["system"]["molecules"][1]["count"] = 0
    assert "'system.molecules.1.count'" in _error(bad)
    bad = copy.deepcopy(cfg)
    del bad["aa_md"]["cutoff_nm"]
    assert "cutoff_nm" in _error(bad)


def test_physical_consistency():
    cfg = config.load(REPO / "tests/config/tiny.yaml")
    bad = copy.deepcopy(cfg)
    bad["aa_md"]["cutoff_nm"] = 1.0  # box 1.932 nm
    assert "not below half the box edge" in _error(bad)
    bad = copy.deepcopy(cfg)
    bad["aa_md"]["output_interval_ps"] = 0.003  # not a whole number of 2 fs steps
    assert "whole number" in _error(bad)


def test_snakemake_stops_on_an_unknown_key_naming_it(tmp_path):
    wf = workflow_copy(tmp_path)
    proc = snakemake(wf, "-n", "--config", "foo=1", check=False)
    assert proc.returncode != 0
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if "kdcg config error" in l]
    assert len(lines) == 1 and "unknown config key 'foo'" in lines[0], proc.stderr[-2000:]


def test_snakemake_stops_on_an_ill_typed_key(tmp_path):
    wf = workflow_copy(tmp_path)
    cfg = yaml.safe_load((wf / "config/config.yaml").read_text())
    cfg["aa_md"]["em_max_steps"] = "many"
    (wf / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(wf, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0 and "'aa_md.em_max_steps'" in proc.stdout + proc.stderr


def test_paper_dry_run_lists_the_all_atom_and_mapping_jobs(tmp_path):
    wf = workflow_copy(tmp_path)
    out = snakemake(wf, "-n", "--quiet", "rules", "--configfile", "config/paper.yaml").stdout
    for rule in ("packmol_box", "topology", "energy_minimization", "nvt_equilibration", "nvt_production", "cg_dataset"):
        assert rule in out, out


def _dag_rule_counts(wf, configfile):
    out = snakemake(wf, "-n", "--quiet", "rules", "--configfile", configfile).stdout
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M) if rule != "total"}


def _job_outputs(wf, configfile, folder):
    """The outputs under <folder> of every job of a dry run's DAG."""
    out = snakemake(wf, "-n", "--configfile", configfile).stdout
    return sorted({word.rstrip(",") for line in out.splitlines() if line.strip().startswith("output:")
                   for word in line.split()[1:] if f"/{folder}/" in word})


def test_paper_dry_run_lists_every_model_and_312_md_replicas(tmp_path):
    counts = _dag_rule_counts(workflow_copy(tmp_path), "config/paper.yaml")
    # 38 trained models (8 teachers, 24 + 6 students), one per job, each published by trained_model
    assert counts["train_models"] == counts["trained_model"] == 38
    assert counts["teacher_labels"] == 8 and counts["ensemble_labels"] == 1 and counts["ensemble_model"] == 1
    # 39 models (the 38 and the ensemble) x 8 replicas, one replica per job, likewise analysed
    assert counts["md_replicas"] == counts["md_replica"] == 39 * 8
    assert counts["analyze_replicas"] == counts["analyze_replica"] == 39 * 8


def test_default_dry_run_batches_replicas_and_models_per_job(tmp_path):
    wf = workflow_copy(tmp_path)
    counts = _dag_rule_counts(wf, "config/config.yaml")
    # 4 teachers + the ensemble + 12 + 6 students, both replicas of a model in one job
    assert counts["md_replicas"] == counts["analyze_replicas"] == 23
    assert counts["md_replica"] == counts["analyze_replica"] == 46
    # training.models_per_job 3: the 22 models in 8 jobs (teachers 3 + 1, the 3 single-teacher
    # students of each teacher, the 6 ensemble students 3 + 3)
    assert counts["train_models"] == 8 and counts["trained_model"] == 22
    records = [p.rsplit("/", 1)[1] for p in _job_outputs(wf, "config/config.yaml", "jobs")
               if "/models/jobs/" in p]
    assert sorted(records) == sorted(["teachers-1.json", "teachers-2.json", "ensemble-students-1.json",
                                      "ensemble-students-2.json", *(f"students-of-teacher-{s}-1.json" for s in (1, 2, 3, 4))])
    md_records = {p.rsplit("/", 1)[1] for p in _job_outputs(wf, "config/config.yaml", "jobs") if "/md/" in p}
    assert md_records == {"md-1-2.json", "analysis-1-2.json"}


def test_rule_names_do_not_depend_on_the_config(tmp_path):
    """Jobs of one model or replica and batches of several are one rule: the tiny, default,
    study and paper DAGs (1 to 3 models and 1 to 4 replicas per job) use the same rule names."""
    wf = workflow_copy(tmp_path)
    names = {c: set(_dag_rule_counts(wf, c)) for c in ("tests/config/tiny.yaml", "config/config.yaml",
                                                     "config/study.yaml", "config/paper.yaml")}
    assert len(set(map(frozenset, names.values()))) == 1, names
    assert {"train_models", "trained_model", "md_replicas", "md_replica", "analyze_replicas",
            "analyze_replica"} <= names["config/paper.yaml"]


def test_lint_and_format_are_clean(tmp_path):
    """`snakemake --lint` finds nothing; every rule file is snakefmt-formatted."""
    wf = workflow_copy(tmp_path)
    lint = snakemake(wf, "--lint", check=False)
    assert lint.returncode == 0 and "Congratulations, your workflow is in a good condition!" in lint.stdout + lint.stderr, \
        lint.stdout[-3000:] + lint.stderr[-3000:]
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/rules"], cwd=REPO,
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_a_structure_that_disagrees_with_its_itp_stops_check_config_and_the_dry_run(tmp_path):
    wf = workflow_copy(tmp_path)
    pdb = wf / "resources/opls_des/urea.pdb"
    pdb.write_text("\n".join(l for l in pdb.read_text().splitlines() if " H22 " not in l) + "\n")
    proc = subprocess.run([sys.executable, "-m", "kdcg", "check-config", "tests/config/tiny.yaml"], cwd=wf,
                          capture_output=True, text=True)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2
    assert last == ("kdcg error: tests/config/tiny.yaml: config key 'system.molecules': resources/opls_des/urea.pdb: "
                    "7 atoms but urea.itp defines 8 (atoms missing?)")
    proc = snakemake(wf, "-n", "--configfile", "tests/config/tiny.yaml", check=False)
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if "kdcg config error" in l]
    assert proc.returncode != 0 and len(lines) == 1 and "urea.pdb: 7 atoms but urea.itp defines 8" in lines[0]
    (wf / "resources/opls_des/urea.pdb").unlink()
    proc = snakemake(wf, "-n", "--configfile", "tests/config/tiny.yaml", check=False)
    assert proc.returncode != 0 and "urea.pdb: file of molecule 'urea' not found" in proc.stdout + proc.stderr


def test_a_missing_gromacs_stops_the_run_before_the_first_job_naming_its_stages(tmp_path):
    """PATH without gmx (a login node before `module load gromacs`): one line, no job started."""
    import os
    import shutil

    from conftest import venv_env

    wf = workflow_copy(tmp_path / "wf")
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("bash", "sh", "which", "env", "cat", "tail", "mkdir", "rm", "packmol"):
        os.symlink(shutil.which(name), tools / name)
    env = venv_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{tools}"
    proc = snakemake(wf, "results-tiny/cg/dataset.npz", "--cores", "1", "--configfile", "tests/config/tiny.yaml",
                     check=False, env=env)
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if "kdcg tool error" in l]
    assert proc.returncode != 0 and len(lines) == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert lines[0] == ("kdcg tool error: GROMACS (gmx or gmx_mpi) is not on PATH; needed by energy_minimization, "
                        "nvt_equilibration, nvt_production (load its module or install it: README, 'Set-up')")
    assert not (wf / "results-tiny" / "aa").exists()  # nothing ran: not even the topology
    # the stage itself says the same when run without the workflow
    proc = subprocess.run([sys.executable, "-m", "kdcg", "gromacs", "em", "--config", "tests/config/tiny.yaml",
                           "--structure", "x.gro", "--topology", "x.top", "--stage-dir", "em"], cwd=wf, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        "kdcg error: GROMACS (gmx or gmx_mpi) is not on PATH; needed by GROMACS stage em (load its module or "
        "install it: README, 'Set-up')")


def test_nested_command_line_overrides_are_typed_and_overlays_merge(tmp_path):
    wf = workflow_copy(tmp_path)
    out = snakemake(wf, "-n", "--config", "md={replicas: 3, timestep_fs: 1.0}").stdout
    assert "results/md/teacher-1/replica-3/result.json" in out and "replica-4" not in out
    proc = snakemake(wf, "-n", "--config", "md={replicas: three}", check=False)
    assert proc.returncode != 0 and "config key 'md.replicas': 'three' is not of type 'integer'" in proc.stdout + proc.stderr
    (wf / "overlay.yaml").write_text("md:\n  replicas: 3\n")
    assert "results/md/ensemble/replica-3/result.json" in snakemake(wf, "-n", "--configfile", "overlay.yaml").stdout
    proc = subprocess.run([sys.executable, "-m", "kdcg", "check-config", "overlay.yaml"], cwd=wf, capture_output=True,
                          text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("overlay.yaml: valid (merged onto ")
    (wf / "bad-overlay.yaml").write_text("md:\n  replicas: 0\n")
    proc = subprocess.run([sys.executable, "-m", "kdcg", "check-config", "bad-overlay.yaml"], cwd=wf, capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "config key 'md.replicas': 0 is less than the minimum of 1" in proc.stderr


def test_each_shipped_config_writes_to_its_own_results(tmp_path):
    """The tiny example after a default run plans nothing of the default's, and vice versa."""
    wf = workflow_copy(tmp_path)
    for configfile, folder in (("tests/config/tiny.yaml", "results-tiny"), ("config/paper.yaml", "results-paper"),
                               ("config/config.yaml", "results"), ("config/study.yaml", "results-study-100ps"),
                               ("config/study.yaml + config/study-300ps.yaml", "results-study")):
        out = snakemake(wf, "-n", "--configfile", *configfile.split(" + ")).stdout  # an overlay after its base
        outputs = re.findall(r"^\s+output: (.+)$", out, flags=re.M)
        files = [f.strip() for line in outputs for f in line.split(",")]
        assert files and all(f.startswith(folder + "/") for f in files), (configfile, files[:5])


def test_every_schema_key_has_a_description():
    missing = []

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            if not str(sub.get("description", "")).strip():
                missing.append(".".join(path + [key]))
            walk(sub, path + [key])
            if isinstance(sub.get("items"), dict):
                walk(sub["items"], path + [key, "[]"])

    walk(config.load_schema(), [])
    assert missing == []


def test_every_subcommand_has_a_description_an_example_and_help_for_each_option():
    import argparse

    from kdcg import __version__
    from kdcg import cli

    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(subparsers.choices) == 20
    for name, sub in subparsers.choices.items():
        assert sub.description and len(sub.description) > 20, name
        assert sub.epilog.startswith("example:\n  kdcg " + name), name
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"kdcg {name} {action.dest}"
    proc = subprocess.run([sys.executable, "-m", "kdcg", "--version"], capture_output=True, text=True)
    assert proc.stdout.strip() == f"kdcg {__version__}"


def test_reading_the_rules_writes_nothing_and_a_run_follows_the_config_without_snakemake_records(tmp_path):
    """A dry run and --lint leave results_dir untouched. A run writes the stage's snapshot, and
    where .snakemake/ is gone (a copied or moved results folder) the snapshot's content decides:
    dry runs with a changed key and back write nothing and rerun nothing; a run with a changed
    key reruns that stage only, and going back reruns it again."""
    wf = workflow_copy(tmp_path)
    tiny = ("--configfile", "tests/config/tiny.yaml")
    snakemake(wf, "-n", *tiny)
    snakemake(wf, "--lint")
    assert not (wf / "results-tiny").exists() and not (wf / "results").exists()
    target = "results-tiny/aa/topol.top"
    snakemake(wf, target, "--cores", "1", *tiny)
    folder = wf / "results-tiny/config"
    assert sorted(p.name for p in folder.iterdir()) == ["aa.yaml"]  # only the stage this target reads
    snap = folder / "aa.yaml"

    def state():
        return snap.read_bytes(), snap.stat().st_mtime_ns, (wf / target).stat().st_mtime_ns

    first = state()
    shutil.rmtree(wf / ".snakemake")
    seed = ("--config", "packmol={seed: 12345}")
    out = snakemake(wf, "-n", target, *tiny, *seed)
    assert "kdcg: results-tiny/config/aa.yaml holds other values of keys that decide the aa stage" in out.stderr
    assert "Nothing to be done" in snakemake(wf, "-n", target, *tiny).stdout + out.stderr
    assert "Nothing to be done" in (lambda o: o.stdout + o.stderr)(snakemake(wf, "-n", target, *tiny,
                                                                            "--config", "analysis={cdf_windows: 5}"))
    assert state() == first
    time.sleep(0.05)
    out = snakemake(wf, target, "--cores", "1", *tiny, *seed)
    assert "localrule topology" in out.stdout + out.stderr and "seed: 12345" in snap.read_text()
    second = state()
    assert second[1] > first[1] and second[2] > first[2]
    # with Snakemake's records a dry run lists what going back reruns; without them a run does it
    out = snakemake(wf, "-n", target, *tiny)
    assert "rule topology" in out.stdout and "Params have changed since last execution" in out.stdout
    shutil.rmtree(wf / ".snakemake")
    out = snakemake(wf, target, "--cores", "1", *tiny)
    assert "localrule topology" in out.stdout + out.stderr and snap.read_bytes() == first[0]


def test_a_snapshot_keeps_its_time_stamp_when_only_keys_that_decide_nothing_change(tmp_path):
    """kdcg.config.write_snapshot: the training snapshot's stamp moves for a weight key, not for
    a diagnostic or a teacher added; the MD snapshot's only for the split's keys."""
    import os

    from kdcg.config import load, snapshot, write_snapshot

    cfg = load(REPO / "tests/config/tiny.yaml", partial=True)
    paths = {stage: tmp_path / f"{stage}.yaml" for stage in ("training", "md")}
    sections = {"training": ["model", "prior", "training"], "md": ["system", "md", "training"]}

    def write(training_changes: dict) -> dict:
        """Write both snapshots with these training keys changed; which stamps moved."""
        changed = {**cfg, "training": {**cfg["training"], **training_changes}}
        for path in paths.values():
            if path.is_file():
                os.utime(path, ns=(0, 10 ** 9))  # an old stamp, so that a new one shows
        moved = {stage: write_snapshot(path, stage, snapshot(changed, sections[stage])) for stage, path in paths.items()}
        for stage, path in paths.items():
            assert path.read_text() == yaml.safe_dump(snapshot(changed, sections[stage]), sort_keys=False), stage
            assert (path.stat().st_mtime_ns != 10 ** 9) == moved[stage], stage
        return moved

    assert write({}) == {"training": True, "md": True}  # new files
    assert write({}) == {"training": False, "md": False}
    seeds = cfg["training"]["teacher_seeds"]
    assert write({"hippynn_plots": True, "train_eval_fraction": 0.5, "teacher_seeds": seeds + [99]}) == \
        {"training": False, "md": False}
    assert write({"learning_rate": 0.002}) == {"training": True, "md": False}
    assert write({"learning_rate": 0.002, "split_seed": 7}) == {"training": True, "md": True}
    paths["md"].write_text("not: [yaml")  # a damaged snapshot is rewritten
    assert write({"learning_rate": 0.002, "split_seed": 7})["md"] is True


def test_command_line_lists_get_their_items_types():
    """snakemake --config 'training={teacher_seeds: [1, 2]}' hands kdcg ['1', '2']."""
    from kdcg.config import coerce_overrides, load, validate

    cfg = load(REPO / "config/config.yaml")
    overrides = {"training": {"teacher_seeds": ["1", "2"], "learning_rate": "0.002"},
                 "analysis": {"adf_triplets": [["Cho", "Cl", "urea"]]}}
    cfg["training"].update(overrides["training"])
    coerce_overrides(cfg, overrides)
    assert cfg["training"]["teacher_seeds"] == [1, 2] and cfg["training"]["learning_rate"] == 0.002
    validate(cfg)
    cfg["training"]["teacher_seeds"] = ["1", "two"]
    coerce_overrides(cfg, {"training": {"teacher_seeds": ["1", "two"]}})
    with pytest.raises(InputError, match="teacher_seeds"):
        validate(cfg)


def test_molecules_that_cannot_fit_the_box_are_refused_before_any_job_touches_the_results(tmp_path):
    """100,000 urea in the tiny 19.32 A box: check-config, a dry run and a real run refuse it in
    one line with the numbers; the finished box and topology of that results folder stay."""
    from conftest import venv_env

    wf = workflow_copy(tmp_path)
    cfg = yaml.safe_load((wf / "tests/config/tiny.yaml").read_text())
    cfg["system"]["molecules"][2]["count"] = 100000
    (wf / "crowded.yaml").write_text(yaml.safe_dump(cfg))
    aa = wf / "results-tiny" / "aa"
    aa.mkdir(parents=True)
    finished = {aa / "box.gro": b"a finished box\n", aa / "topol.top": b"a finished topology\n"}
    for path, content in finished.items():
        path.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "kdcg", "check-config", "crowded.yaml"], cwd=wf, capture_output=True,
                          text=True)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("kdcg error: crowded.yaml: config key 'system.molecules': the molecules cannot fit the box:"
                           " their van der Waals volumes (20 Cho x 118 A^3, 20 Cl x 22 A^3, 100000 urea x 53 A^3)"
                           " add up to 5.31e+06 A^3, 736 of the 7211 A^3 box (system.box_edge_A = 19.32 A;"), line
    # molar masses (g/mol) of choline, chloride and urea; 1 A^3 = 1e-24 cm^3
    grams = (20 * 104.17 + 20 * 35.45 + 100000 * 60.06) / 6.02214076e23
    assert line.endswith(f"mass density {grams / (19.32 ** 3 * 1e-24):.2e} g/cm^3"), line
    for args in (["-n"], ["--cores", "1"]):
        proc = snakemake(wf, *args, "--configfile", "crowded.yaml", check=False, env=venv_env())
        lines = [l for l in (proc.stdout + proc.stderr).splitlines() if "kdcg config error" in l]
        assert proc.returncode != 0 and len(lines) == 1 and "the molecules cannot fit the box" in lines[0], args
    assert all(path.read_bytes() == content for path, content in finished.items())
    # the shipped configs fit: reline at its measured density fills 0.68 of its box
    from kdcg.aa.system import read_molecules, vdw_volume_A3

    for name in ("config/config.yaml", "config/paper.yaml", "tests/config/tiny.yaml"):
        c = yaml.safe_load((REPO / name).read_text())
        filled = sum(m.count * vdw_volume_A3(m) for m in read_molecules(c, REPO)) / c["system"]["box_edge_A"] ** 3
        assert 0.66 < filled < 0.70, (name, filled)


@pytest.mark.parametrize("configfile", ["tests/config/tiny.yaml", "config/config.yaml", "config/study.yaml",
                                        "config/paper.yaml"])
def test_every_kdcg_command_line_the_rules_build_parses(configfile, tmp_path):
    """The 78 options the rules spell as shell strings against the CLI's own parser: every job
    of each shipped config's DAG, as Snakemake would run it."""
    import argparse
    import shlex

    from kdcg.cli import build_parser

    out = snakemake(workflow_copy(tmp_path), "-n", "-p", "--configfile", configfile, "--forceall").stdout
    commands = [line.split("Shell command: ", 1)[1] for line in out.splitlines() if "kdcg_job.py" in line]
    assert len(commands) >= 20, out[-2000:]
    parser = build_parser()
    seen = set()
    for command in commands:
        words = shlex.split(command.split(" > ", 1)[0])
        assert words[:2] == ["python", "workflow/scripts/kdcg_job.py"], command
        try:
            args = parser.parse_args(words[2:])
        except SystemExit:
            raise AssertionError(f"kdcg refuses the command line a rule builds: {command}") from None
        assert isinstance(args, argparse.Namespace) and callable(args.func)
        seen.add(args.command)
    # every stage's command appears in the DAG
    assert {"topology", "box", "gromacs", "perf-table", "aa-energy", "map", "prior", "train", "label",
            "ensemble-labels", "ensemble", "md", "analyze", "summarize"} <= seen, seen


def test_every_rule_the_slurm_profile_names_is_in_the_paper_and_default_dags(tmp_path):
    """The profile's per-rule threads and resources: a rule renamed or gone would silently fall
    back to the default resources, at either scale."""
    profile = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    named = set(profile["set-threads"]) | set(profile["set-resources"])
    grouped = {entry.split("=")[0] for entry in profile["groups"]}
    wf = workflow_copy(tmp_path)
    for configfile in ("config/paper.yaml", "config/config.yaml"):
        rules = set(_dag_rule_counts(wf, configfile))
        assert len(named) >= 14 and named <= rules, (configfile, sorted(named - rules))
        assert grouped <= rules, (configfile, sorted(grouped - rules))


def test_the_gpu_profile_is_the_slurm_profile_with_gpus_for_training_and_md():
    """workflow/profiles/slurm-gpu cannot drift from workflow/profiles/slurm: every key equal but
    the GPU requests (and the runtimes a GPU shortens) of the training and MD jobs."""
    cpu = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    gpu = yaml.safe_load((REPO / "workflow/profiles/slurm-gpu/config.yaml").read_text())
    assert {k: v for k, v in cpu.items() if k != "set-resources"} == {k: v for k, v in gpu.items() if k != "set-resources"}
    assert cpu["set-resources"].keys() == gpu["set-resources"].keys()
    on_gpu = {rule for rule, res in gpu["set-resources"].items() if res.get("gpu")}
    assert on_gpu == {"train_models", "md_replicas"}
    for rule, res in gpu["set-resources"].items():
        if rule in on_gpu:
            assert res["gpu"] == 1 and res.get("mem_mb") == cpu["set-resources"][rule].get("mem_mb")
            assert res["runtime"] <= cpu["set-resources"][rule]["runtime"]
        else:
            assert res == cpu["set-resources"][rule], rule


def _md_job_memory(wf, configfile) -> dict:
    """{md job output: mem_mb} of a dry run's md_replicas jobs."""
    out = snakemake(wf, "-n", "--configfile", *configfile).stdout
    memory, rule = {}, None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("rule ") or line.startswith("localrule "):
            rule, output = line.split()[1].rstrip(":"), None
        elif line.startswith("output:"):
            output = line.split()[1].rstrip(",")
        elif line.startswith("resources:") and rule == "md_replicas":
            memory[output] = int(re.search(r"mem_mb=(\d+)", line).group(1))
    return memory


def test_md_jobs_ask_for_memory_by_their_replicas_and_beads(tmp_path):
    """The paper-size smoke runs' 8-replica ensemble job peaked at 13.5 and 16.6 GB and their
    one-model jobs at up to 7.0 GB (docs/paper-scale.md), where every MD job asked for 8,000 MB:
    the request now grows with the replicas in the job, the beads and the ensemble."""
    wf = workflow_copy(tmp_path)
    smoke = _md_job_memory(wf, ["config/paper.yaml", "config/paper-smoke.yaml"])
    ensemble = [mb for out, mb in smoke.items() if "/md/ensemble/" in out]
    single = [mb for out, mb in smoke.items() if "/md/ensemble/" not in out]
    assert len(ensemble) == 1 and len(single) == 38
    assert ensemble[0] >= 16_641 * 1.1 and min(single) >= 6_987 * 1.1
    paper = _md_job_memory(wf, ["config/paper.yaml"])  # one replica per job
    assert len(paper) == 312 and max(paper.values()) < min(single) and min(paper.values()) >= 2000
    tiny = _md_job_memory(wf, ["tests/config/tiny.yaml"])
    assert set(tiny.values()) == {2000}

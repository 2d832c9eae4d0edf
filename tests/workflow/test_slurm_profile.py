"""The cluster profile on a real Slurm: a single-node cluster on loopback (tests/workflow/slurm_cluster.py)
with two GPUs declared runs the tiny config through workflow/profiles/slurm-gpu (the CPU profile
plus a GPU for each training and MD job; tests/unit/test_config.py keeps the two equal in all
else), every job submitted with sbatch, short jobs packed by the profile's groups, to the
report. The daemons are stopped by the ids this test started, whatever happens."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys

import pytest
import yaml

from conftest import snakemake, venv_env, workflow_copy
from slurm_cluster import LocalSlurm, missing_binaries

pytestmark = pytest.mark.e2e

HARD_LIMIT_S = 45 * 60  # the whole Slurm run; the process group is killed past it
PROFILE = "workflow/profiles/slurm-gpu"
N_GPUS = 2  # declared on the loopback node: two GPU jobs at a time, a third waits


def _cluster_or_skip():
    missing = missing_binaries()
    why = None
    if missing:
        why = f"Slurm/munge binaries missing: {', '.join(missing)} (scripts/setup.sh --slurm installs them)"
    elif os.geteuid() != 0:
        why = "slurmd must run as root to start jobs"
    if why:
        # CI installs Slurm (make test); only an explicit opt-out may skip
        if os.environ.get("KDCG_SKIP_SLURM") == "1":
            pytest.skip(why)
        pytest.fail(why + "; set KDCG_SKIP_SLURM=1 to skip this test")


def _run_with_hard_limit(cmd, cwd, env, limit_s):
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the Slurm run passed its hard limit of {limit_s} s:\n{out[-4000:]}")
    return proc.returncode, out


def _mem_mb(text: str) -> float:
    value, unit = float(text[:-1]), text[-1]
    return value * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2}[unit]


def test_tiny_config_through_the_slurm_profile_to_the_report(tmp_path):
    _cluster_or_skip()
    wf = workflow_copy(tmp_path / "wf")
    # every job stays listed in squeue for the whole run (MinJobAge past the hard limit)
    cluster = LocalSlurm(tmp_path / "slurm", min_job_age_s=HARD_LIMIT_S + 600, gpus=N_GPUS)
    try:
        cluster.start()
        env = {**venv_env(), "SLURM_CONF": str(cluster.conf),
               "PATH": f"{cluster.root / 'bin'}{os.pathsep}{venv_env()['PATH']}"}
        # the declared GPUs are enforced: a request for more than the node has is refused at once
        over = subprocess.run(["sbatch", f"--gpus={N_GPUS + 1}", "--wrap", "true"], env=env, capture_output=True, text=True)
        assert over.returncode != 0 and "not available" in over.stderr, over
        # as on a cluster, one model per training job
        (wf / "cluster.yaml").write_text("training:\n  models_per_job: 1\n")
        configs = ["--configfile", "tests/config/tiny.yaml", "cluster.yaml"]
        # jobs the scheduler must run: everything but the local rules
        dry = snakemake(wf, "-n", "--quiet", "rules", *configs).stdout
        counts = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", dry, flags=re.M)}
        assert not (wf / "results-tiny").exists()  # the dry run wrote nothing
        local = ("all", "stage_config", "trained_model", "md_replica", "analyze_replica")
        n_jobs = counts["total"] - sum(counts.get(rule, 0) for rule in local)
        # the profile's groups: the labels and their average in one submission (one connected
        # group), the analyses 8 to a submission
        profile = yaml.safe_load((wf / PROFILE / "config.yaml").read_text())
        assert sorted(profile["groups"]) == ["analyze_replicas=analyses", "ensemble_labels=labels", "teacher_labels=labels"]
        per_analyses_job = int(dict(e.split("=") for e in profile["group-components"])["analyses"])
        n_analyses_jobs = math.ceil(counts["analyze_replicas"] / per_analyses_job)
        n_submissions = (n_jobs - counts["teacher_labels"] - counts["ensemble_labels"] + 1
                         - counts["analyze_replicas"] + n_analyses_jobs)
        assert n_analyses_jobs < counts["analyze_replicas"]

        cmd = [sys.executable, "-m", "snakemake", "--profile", PROFILE, *configs, "--jobs", "3", "--slurm-no-account",
               "--slurm-init-seconds-before-status-checks", "5", "--seconds-between-status-checks", "5"]
        rc, out = _run_with_hard_limit(cmd, wf, env, HARD_LIMIT_S)
        assert rc == 0, f"snakemake through the Slurm profile failed:\n{out[-6000:]}\n{cluster.logs()}"
        assert "slurm-status-command" not in out or "squeue" in out

        # every job went through sbatch and finished there
        q = subprocess.run(["squeue", "-t", "all", "-h", "-o", "%i|%C|%m|%T|%k"], env=env, capture_output=True,
                           text=True, check=True).stdout.splitlines()
        # every job but the refused GPU request above (listed FAILED, without a comment)
        jobs = [line.split("|") for line in q if line.strip() and not line.endswith("|(null)")]
        assert len(jobs) == n_submissions, (f"{len(jobs)} Slurm jobs for {n_jobs} workflow jobs, {n_submissions} "
                                            "submissions expected:\n" + "\n".join(q))
        assert all(state == "COMPLETED" for _, _, _, state, _ in jobs), "\n".join(q)
        # a group job's comment: rule_<group>_<its rules>
        packed = sorted(c for *_, c in jobs if c.startswith(("rule_labels_", "rule_analyses_")))
        assert packed == ["rule_analyses_analyze_replicas"] * n_analyses_jobs + [
            "rule_labels_ensemble_labels_teacher_labels"], "\n".join(q)
        # a GPU for every training and MD job, and for no other: the request reached Slurm, which
        # scheduled it against the node's GPUs
        shown = subprocess.run(["scontrol", "-o", "show", "job"], env=env, capture_output=True, text=True,
                               check=True).stdout.splitlines()
        gpu_jobs = {re.search(r"Comment=(\S+)", line).group(1) for line in shown if "gpu:1" in line}
        wants_gpu = ("rule_train_models_", "rule_md_replicas_")
        assert gpu_jobs and all(c.startswith(wants_gpu) for c in gpu_jobs), sorted(gpu_jobs)
        assert len(gpu_jobs) == counts["train_models"] + counts["md_replicas"], sorted(gpu_jobs)
        # the profile's per-rule requests reached sbatch: a teacher's job asks for 8 CPUs and >= 16 GB
        # (the plugin may add a little memory on top)
        teachers = [j for j in jobs if j[4].startswith("rule_train_models_wildcards_teacher-")]
        assert len(teachers) == len(yaml.safe_load((wf / "tests/config/tiny.yaml").read_text())["training"]["teacher_seeds"])
        assert len([j for j in jobs if j[4].startswith("rule_train_models_")]) == counts["train_models"], "\n".join(q)
        assert all(cpus == "8" and _mem_mb(mem) >= 16000 for _, cpus, mem, _, _ in teachers), "\n".join(q)

        results = wf / "results-tiny"
        for name in ("training", "tae_rdf", "tae_adf", "tae_cdf", "rdf", "adf", "cdf", "cdf_time", "energy",
                     "stability"):
            png = results / "figures" / f"{name}.png"
            assert png.is_file() and png.stat().st_size > 10_000, png
        for name in ("tae", "tae_summary", "performance", "training", "stability"):
            assert (results / "tables" / f"{name}.csv").is_file()

        rep = snakemake(wf, "--profile", PROFILE, *configs, "--slurm-no-account",
                        "--report", "results-tiny/report.html", env=env, check=False)
        assert rep.returncode == 0, rep.stdout[-3000:] + rep.stderr[-3000:]
        html = (results / "report.html").read_text(errors="replace")
        assert len(html) > 100_000 and "tae_rdf.png" in html
    finally:
        cluster.stop()
    alive = [name for name, p in cluster.procs.items() if p.poll() is None]
    assert not alive, f"daemons still running: {alive}"

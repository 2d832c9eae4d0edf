"""A single-node Slurm on loopback for the profile test: Debian's munge, slurmctld and slurmd,
started by hand (no systemd), all state in one folder, stopped by the process ids it started.

The node declares more CPUs and memory than this machine has (SlurmdParameters=config_overrides)
so that the cluster profile's per-rule requests are accepted unchanged; jobs then share the real
cores. No accounting storage, so the executor plugin must read job states from squeue, and
MinJobAge (at least 300 s) keeps finished jobs visible there.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "srun")


def missing_binaries() -> list[str]:
    return [b for b in (*DAEMONS, *CLIENTS) if shutil.which(b) is None
            and not Path("/usr/sbin", b).exists()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


SLURM_CONF = """\
ClusterName=kdcg
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/ctld-state
SlurmdSpoolDir={root}/slurmd-spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
MinJobAge={min_job_age_s}
ReturnToService=2
MpiDefault=none
{gres_types}SlurmctldTimeout=30
SlurmdTimeout=60
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb}{node_gres} State=UNKNOWN
PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class LocalSlurm:
    """Start with `start()`, stop with `stop()`; `env` has SLURM_CONF for clients and jobs."""

    def __init__(self, root: Path, cpus: int = 16, mem_mb: int = 64000, min_job_age_s: int = 300, gpus: int = 0):
        self.root = Path(root)
        self.cpus, self.mem_mb = cpus, mem_mb
        # GPUs declared as a counted GRES with no device files: Slurm schedules and accounts
        # --gpus / --gres requests against them as on a GPU node; the jobs see no device
        self.gpus = gpus
        # >= 300 s, or the plugin distrusts squeue; longer keeps every job of a test listed
        self.min_job_age_s = max(300, min_job_age_s)
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_srun_shim(self) -> None:
        """snakemake-executor-plugin-slurm-jobstep drops every SLURM_* variable, SLURM_CONF
        included, before its `srun` inside a job; with no /etc/slurm/slurm.conf srun then
        fails ("Could not establish a configuration source"). A shim first on PATH puts this
        cluster's SLURM_CONF back and runs the real srun."""
        bin_dir = self.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        shim = bin_dir / "srun"
        shim.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {shutil.which("srun")} "$@"\n')
        shim.chmod(0o755)
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"

    def _write_files(self) -> None:
        for d in ("ctld-state", "slurmd-spool", "munge"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(128))
        os.chmod(key, 0o400)
        self.host = socket.gethostname().split(".")[0]
        if self.gpus:
            # the gpu plugin counts a node's GPUs by their device files: plain files stand in
            devices = self.root / "dev"
            devices.mkdir(exist_ok=True)
            for i in range(self.gpus):
                (devices / f"gpu{i}").touch()
            (self.root / "gres.conf").write_text(
                f"AutoDetect=off\nNodeName={self.host} Name=gpu File={devices}/gpu[0-{self.gpus - 1}]\n")
        self.conf.write_text(SLURM_CONF.format(
            host=self.host, ctld_port=_free_port(), slurmd_port=_free_port(), root=self.root,
            munge_socket=self.munge_socket, cpus=self.cpus, mem_mb=self.mem_mb, min_job_age_s=self.min_job_age_s,
            gres_types="GresTypes=gpu\n" if self.gpus else "",
            node_gres=f" Gres=gpu:{self.gpus}" if self.gpus else ""))

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.root / f"{name}.stdout", "wb")
        self.procs[name] = subprocess.Popen([_daemon(name), *args], stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env, start_new_session=True)

    def _wait(self, what: str, ok, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode} while waiting for {what}:\n"
                                       + self.logs())
            if ok():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}:\n" + self.logs())

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=30)

    def start(self) -> "LocalSlurm":
        self._write_files()
        self._write_srun_shim()
        m = self.root / "munge"
        self._spawn("munged", ["--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={m / 'munge.key'}", f"--pid-file={m / 'munged.pid'}",
                               f"--log-file={m / 'munged.log'}", f"--seed-file={m / 'munged.seed'}"])
        self._wait("munged", lambda: self.munge_socket.exists())
        self._spawn("slurmctld", ["-D", "-i", "-f", str(self.conf)])
        self._wait("slurmctld", lambda: self._run("scontrol", "ping").stdout.count("UP") > 0)
        self._spawn("slurmd", ["-D", "-f", str(self.conf)])

        def node_idle():
            out = self._run("sinfo", "-h", "-o", "%t").stdout.strip()
            return out in ("idle", "mix", "alloc")
        self._wait("the node to come up idle", node_idle)
        return self

    def logs(self, tail: int = 30) -> str:
        parts = []
        for f in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.stdout")) + [self.root / "munge/munged.log"]:
            if f.is_file():
                lines = f.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"--- {f.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def cancel_all(self, wait_s: float = 30.0) -> None:
        """Cancel every job and wait until none runs, so that stopping slurmd leaves no job."""
        if "slurmctld" not in self.procs or self.procs["slurmctld"].poll() is not None:
            return
        self._run("scancel", "--full", "--user", str(os.getuid()))
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and self._run("squeue", "-h", "-t", "RUNNING,COMPLETING,PENDING").stdout.strip():
            time.sleep(1)

    def stop(self) -> None:
        """Stop the daemons this object started, by their process ids (jobs first)."""
        try:
            self.cancel_all()
        except Exception:
            pass
        for name in reversed(DAEMONS):
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)

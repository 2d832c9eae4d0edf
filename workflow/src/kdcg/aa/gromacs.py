"""Stage 1b: all-atom MD with GROMACS, driven through GromacsWrapper.

Three stages: ``em`` (steepest descent), ``nvt_equil`` and ``nvt_prod`` (Nose-Hoover NVT,
h-bonds constrained by LINCS, PME). mdrun works in ``<stage dir>/run/`` and writes a
checkpoint every ``checkpoint_interval_min``; a rerun whose inputs are unchanged continues
from that checkpoint (``mdrun -cpi``, appending to the same files) instead of starting over.
Finished files are moved to ``<stage dir>/<stage>.*``, so a workflow manager may delete
those of an interrupted job without touching the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

from kdcg.errors import InputError
from kdcg.files import link_or_copy

log = logging.getLogger(__name__)

STAGES = ("em", "nvt_equil", "nvt_prod")
FINAL_SUFFIXES = {"em": (".tpr", ".gro", ".edr", ".log"),
                  "nvt_equil": (".tpr", ".gro", ".edr", ".log", ".cpt"),
                  "nvt_prod": (".tpr", ".gro", ".edr", ".log", ".cpt", ".trr")}


def _steps(ps: float, dt_fs: float) -> int:
    return int(round(ps * 1000.0 / dt_fs))


def mdp_text(stage: str, config: dict) -> str:
    """The .mdp of one stage, every value from config."""
    if stage not in STAGES:
        raise ValueError(f"unknown GROMACS stage {stage!r}; expected one of {STAGES}")
    md = config["aa_md"]
    rc = md["cutoff_nm"]
    lj_pme = md["lj_treatment"] == "pme"
    common = {
        "cutoff-scheme": "Verlet",
        "pbc": "xyz",
        "coulombtype": "PME",
        "rcoulomb": rc,
        # LJ-PME (the paper's .mdp) computes the dispersion beyond rvdw on the PME grid; OPLS's
        # geometric combination rule is the one LJ-PME treats exactly
        "vdwtype": "PME" if lj_pme else "Cut-off",
        "vdw-modifier": "Potential-shift" if lj_pme else "None",
        "rvdw": rc,
        "DispCorr": "no" if lj_pme else "EnerPres",  # cut-off: energies and pressure only; forces untouched
        "fourierspacing": md["fourier_spacing_nm"],
        "pme-order": 4,
        "ewald-rtol": 1e-5,
    }
    if stage == "em":
        body = {
            "integrator": "steep",
            "nsteps": md["em_max_steps"],
            "emtol": md["em_tolerance_kJ_mol_nm"],
            "emstep": 0.01,
            "nstlog": 50,
            "nstenergy": 50,
            "constraints": "none",
        }
    else:
        dt_fs = md["timestep_fs"]
        prod = stage == "nvt_prod"
        length = md["production_ps"] if prod else md["equilibration_ps"]
        out_every = _steps(md["output_interval_ps"], dt_fs) if prod else 0
        # nstcalcenergy must divide nstenergy; energies every output frame in production
        nstenergy = out_every if prod else max(1, _steps(1.0, dt_fs))
        body = {
            "integrator": "md",
            "dt": dt_fs / 1000.0,
            "nsteps": _steps(length, dt_fs),
            "tinit": 0,
            "comm-mode": "Linear",
            "nstxout": out_every,
            "nstvout": out_every,
            "nstfout": out_every,
            "nstxout-compressed": 0,
            "nstlog": max(1, _steps(length, dt_fs) // 20),  # ~20 progress records per run
            "nstenergy": nstenergy,
            "nstcalcenergy": _gcd(nstenergy, 100),
            "tcoupl": "nose-hoover",
            "tc-grps": "System",
            "tau-t": md["thermostat_tau_ps"],
            "ref-t": config["system"]["temperature_K"],
            "pcoupl": "no",
            "constraints": "h-bonds",
            "constraint-algorithm": "lincs",
            "lincs-order": 4,
            "lincs-iter": 1,
            "gen-vel": "no" if prod else "yes",
            "gen-temp": config["system"]["temperature_K"],
            "gen-seed": md["velocity_seed"],
            "continuation": "yes" if prod else "no",
        }
    lines = [f"; kdcg {stage} for {config['system']['name']}"]
    lines += [f"{k:<22} = {v}" for k, v in {**body, **common}.items()]
    return "\n".join(lines) + "\n"


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _sha256(paths: list[Path], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def parse_performance(md_log: Path) -> dict:
    """ns/day and wall time from the last 'Performance:' and 'Time:' lines of md.log."""
    text = Path(md_log).read_text(errors="replace")
    perf = re.findall(r"^Performance:\s+([\d.]+)\s+([\d.]+)", text, flags=re.M)
    wall = re.findall(r"^\s+Time:\s+([\d.]+)\s+([\d.]+)", text, flags=re.M)
    out = {"ns_per_day": None, "hours_per_ns": None, "wall_s": None, "core_s": None}
    if perf:
        out["ns_per_day"], out["hours_per_ns"] = float(perf[-1][0]), float(perf[-1][1])
    if wall:
        out["core_s"], out["wall_s"] = float(wall[-1][0]), float(wall[-1][1])
    return out


def run_stage(stage: str, config: dict, structure: Path, topology: Path, stage_dir: Path,
              threads: int = 1, checkpoint: Path | None = None) -> dict:
    """grompp + mdrun one stage, resuming from its checkpoint when possible.

    Returns the performance record, also written to ``<stage_dir>/<stage>.perf.json``.
    """
    from kdcg.tools import require

    quiet_gromacswrapper(require("GROMACS", f"GROMACS stage {stage}"), Path(stage_dir))
    import gromacs  # GromacsWrapper; imported here so the CLI starts fast

    stage_dir = Path(stage_dir)
    run_dir = stage_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    deffnm = run_dir / stage
    mdp = run_dir / f"{stage}.mdp"
    text = mdp_text(stage, config)
    inputs = [Path(structure), Path(topology)] + ([Path(checkpoint)] if checkpoint else [])
    for p in inputs:
        if not p.is_file():
            raise InputError(p, f"input of GROMACS stage {stage} not found")
    fingerprint = _sha256(inputs + sorted(Path(topology).parent.joinpath("toppar").glob("*.itp")), text)
    stamp = run_dir / "inputs.sha256"
    tpr = deffnm.with_suffix(".tpr")
    cpt = deffnm.with_suffix(".cpt")
    resumable = stamp.is_file() and stamp.read_text() == fingerprint and tpr.is_file() and cpt.is_file()
    if resumable:
        log.info("%s: inputs unchanged and checkpoint %s present: continuing the interrupted run", stage, cpt)
    else:
        if any(run_dir.iterdir()):
            log.info("%s: starting afresh (no checkpoint, or inputs changed)", stage)
        for p in run_dir.iterdir():
            p.unlink() if p.is_file() else shutil.rmtree(p)
        mdp.write_text(text)
        grompp_args = dict(f=str(mdp), c=str(structure), p=str(topology), o=str(tpr),
                           po=str(run_dir / "mdout.mdp"), maxwarn=0)
        if checkpoint:
            grompp_args["t"] = str(checkpoint)
        log.info("%s: gmx grompp", stage)
        gromacs.grompp(**grompp_args)
        stamp.write_text(fingerprint)
    # -reprod: on several OpenMP threads mdrun otherwise varies from run to run (two fresh runs
    # of the default config minimised to different structures); its speed cost is not benchmarked
    mdrun_args = dict(s=str(tpr), deffnm=str(deffnm), ntmpi=1, ntomp=threads, reprod=True)
    if stage != "em":  # -v: mdrun's progress and time-to-finish estimate in the log
        mdrun_args.update(v=True, cpi=str(cpt), cpt=config["aa_md"]["checkpoint_interval_min"])
    log.info("%s: gmx mdrun on %d thread(s)%s", stage, threads, " (resumed)" if resumable else "")
    segments = _start_segment(run_dir / "segments.json", cpt if resumable else None)
    started = time.perf_counter()
    gromacs.mdrun(**mdrun_args)
    wall_s = time.perf_counter() - started
    md_log = deffnm.with_suffix(".log")
    if "Finished mdrun" not in md_log.read_text(errors="replace"):
        raise RuntimeError(f"{md_log}: mdrun did not finish")
    record = {"stage": stage, "threads": threads, "resumed": resumable, **parse_performance(md_log)}
    record["wall_s"] = round(wall_s, 3)  # this invocation's mdrun, measured here (EM logs none)
    if stage != "em":
        record.update(whole_run_performance(segments, record, _simulated_ps(stage, config)))
    for suffix in FINAL_SUFFIXES[stage]:
        src = deffnm.with_suffix(suffix)
        if src.is_file():
            link_or_copy(src, stage_dir / f"{stage}{suffix}")
    (stage_dir / f"{stage}.perf.json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("%s: done, %s ns/day", stage, record["ns_per_day"])
    return record


def quiet_gromacswrapper(gmx: str, folder: Path) -> None:
    """Let GromacsWrapper load its tools from the one GROMACS driver kdcg found: without a
    driver list it runs gmx, gmx_d, gmx_mpi and gmx_mpi_d to see which work, and an MPI build
    started outside mpirun fills the log with ~30 lines of MPI_Init errors. Its note about a
    missing ~/.gromacswrapper.cfg is dropped too (kdcg needs none)."""
    drivers = Path(folder) / ".gromacs-driver"
    drivers.mkdir(parents=True, exist_ok=True)
    link = drivers / Path(gmx).name
    if not link.exists():
        link.symlink_to(gmx)
    os.environ["GMXBIN"] = str(drivers)
    os.environ.setdefault("GROMACSWRAPPER_SUPPRESS_SETUP_CHECK", "true")


def _simulated_ps(stage: str, config: dict) -> float:
    md = config["aa_md"]
    return float(md["production_ps"] if stage == "nvt_prod" else md["equilibration_ps"])


def _start_segment(path: Path, checkpoint: Path | None) -> list[dict]:
    """Bookkeeping of the mdrun invocations of one run. A resumed invocation closes the one
    before it at its checkpoint's time: work after that checkpoint is done again now, so it
    does not count."""
    from kdcg.files import read_json, write_json

    segments = []
    if checkpoint is not None and path.is_file():
        try:
            segments = read_json(path, "mdrun invocation record")
        except InputError:
            segments = []  # a half-written record: the killed invocation goes uncounted
        if segments:
            segments[-1]["useful_wall_s"] = max(0.0, checkpoint.stat().st_mtime - segments[-1]["started_unix"])
    segments.append({"started_unix": time.time()})
    write_json(path, segments, indent=2)
    return segments


def whole_run_performance(segments: list[dict], record: dict, simulated_ps: float) -> dict:
    """ns/day of the whole run as if it had not been interrupted: the simulated time over the
    wall time of every invocation up to its last checkpoint, plus the last one's. A run in
    one invocation keeps mdrun's own figures."""
    if len(segments) == 1:
        return {"segments": 1, "simulated_ps": simulated_ps}
    # the same clock for every invocation: kdcg's, from the mdrun call (start-up included)
    wall = sum(s.get("useful_wall_s", 0.0) for s in segments[:-1]) + record["wall_s"]
    ns_per_day = simulated_ps / 1000.0 / wall * 86400.0
    return {"segments": len(segments), "simulated_ps": simulated_ps, "wall_s": round(wall, 3),
            "ns_per_day": round(ns_per_day, 3), "hours_per_ns": round(24.0 / ns_per_day, 3),
            "last_segment_ns_per_day": record.get("ns_per_day")}


def performance_table(records: list[dict], out_tsv: Path) -> None:
    """One row per mdrun stage: ns/day, hours/ns and wall seconds of the whole run (all its
    invocations when it was resumed), threads, resumed, invocations."""
    cols = ["stage", "ns_per_day", "hours_per_ns", "wall_s", "threads", "resumed", "segments"]
    lines = ["\t".join(cols)]
    for rec in records:
        lines.append("\t".join("" if rec.get(c) is None else str(rec.get(c)) for c in cols))
    Path(out_tsv).write_text("\n".join(lines) + "\n")


def energy_series(edr_files: list[Path], out_csv: Path) -> list[dict]:
    """Potential energy (kJ/mol and kcal/mol) and temperature (K) against time (ps) of each
    GROMACS run, from its .edr (``gmx energy``): the all-atom panel of the paper's Fig. S1.
    The stage is the file's name without its suffix."""
    import csv
    import tempfile

    from kdcg.tools import require
    from kdcg.units import KJ_PER_KCAL

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        quiet_gromacswrapper(require("GROMACS", "gmx energy"), Path(tmp))
        import gromacs

        for edr in map(Path, edr_files):
            if not edr.is_file() or edr.stat().st_size == 0:
                raise InputError(edr, "GROMACS energy file not found or empty")
            xvg = Path(tmp) / f"{edr.stem}.xvg"
            rc, _, err = gromacs.energy(f=str(edr), o=str(xvg), input=("Potential", "Temperature", ""),
                                        stdout=False, stderr=False)
            if rc != 0 or not xvg.is_file():
                raise InputError(edr, f"gmx energy failed ({rc}): {(err or '').strip().splitlines()[-1:]}")
            n = 0
            for line in xvg.read_text().splitlines():
                if line.startswith(("#", "@")) or not line.strip():
                    continue
                t, pot, temp = (float(x) for x in line.split()[:3])
                rows.append({"stage": edr.stem, "time_ps": t, "potential_kJ_mol": pot,
                             "potential_kcal_mol": pot / KJ_PER_KCAL, "temperature_K": temp})
                n += 1
            if n == 0:
                raise InputError(edr, "gmx energy found no Potential and Temperature records")
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows

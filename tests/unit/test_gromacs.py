"""GROMACS stage inputs and performance records."""

from __future__ import annotations

import pytest

from conftest import REPO
from kdcg import config
from kdcg.aa import gromacs


def _mdp(stage, cfg):
    out = {}
    for line in gromacs.mdp_text(stage, cfg).splitlines():
        if "=" in line and not line.startswith(";"):
            k, v = (x.strip() for x in line.split("=", 1))
            out[k] = v
    return out


def test_paper_mdp_values():
    cfg = config.load(REPO / "config/paper.yaml")
    equil, prod, em = _mdp("nvt_equil", cfg), _mdp("nvt_prod", cfg), _mdp("em", cfg)
    assert em["integrator"] == "steep" and em["constraints"] == "none"
    assert equil["nsteps"] == "2500000"  # 5 ns at 2 fs
    assert prod["nsteps"] == "500000"  # 1 ns
    assert prod["nstxout"] == prod["nstvout"] == prod["nstfout"] == "500"  # every 1 ps: 1,000 frames after t=0
    assert equil["nstfout"] == "0"
    for mdp in (equil, prod):
        assert mdp["tcoupl"] == "nose-hoover" and mdp["tau-t"] == "0.5" and mdp["ref-t"] == "298.1"
        assert mdp["dt"] == "0.002" and mdp["constraints"] == "h-bonds" and mdp["constraint-algorithm"] == "lincs"
        # the paper's .mdp files (OPLS-DES CCU tutorial): rcoulomb = rvdw = 1.6 nm, PME for Coulomb and LJ
        assert mdp["coulombtype"] == "PME" and mdp["rcoulomb"] == mdp["rvdw"] == "1.6" and mdp["pcoupl"] == "no"
        assert mdp["vdwtype"] == "PME" and mdp["DispCorr"] == "no" and mdp["fourierspacing"] == "0.15"
    assert equil["gen-vel"] == "yes" and prod["gen-vel"] == "no" and prod["continuation"] == "yes"
    assert int(prod["nstenergy"]) % int(prod["nstcalcenergy"]) == 0


def test_unknown_stage():
    with pytest.raises(ValueError, match="unknown GROMACS stage"):
        gromacs.mdp_text("npt", config.load(REPO / "config/paper.yaml"))


def test_performance_is_read_from_md_log(tmp_path):
    log = tmp_path / "md.log"
    log.write_text("...\n               Core t (s)   Wall t (s)        (%)\n       Time:       20.1       10.05      200.0\n"
                   "                 (ns/day)    (hour/ns)\nPerformance:       17.190        1.396\n")
    perf = gromacs.parse_performance(log)
    assert perf == {"ns_per_day": 17.19, "hours_per_ns": 1.396, "wall_s": 10.05, "core_s": 20.1}
    gromacs.performance_table([{"stage": "nvt_prod", "threads": 2, "resumed": True, **perf}], tmp_path / "p.tsv")
    rows = (tmp_path / "p.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:2] == ["stage", "ns_per_day"] and rows[1].split("\t")[:2] == ["nvt_prod", "17.19"]


def test_a_resumed_run_is_timed_as_a_whole(tmp_path):
    """Killed 100 s after its start with its last checkpoint 40 s old, then finished in 30 s:
    the whole run took 60 + 30 s of useful wall time for its 10 ps."""
    import json
    import os
    import time

    segments, cpt = tmp_path / "segments.json", tmp_path / "run.cpt"
    first = gromacs._start_segment(segments, None)
    now = time.time()
    first[0]["started_unix"] = now - 100.0
    segments.write_text(json.dumps(first))
    cpt.write_text("")
    os.utime(cpt, (now - 40.0, now - 40.0))
    both = gromacs._start_segment(segments, cpt)
    assert len(both) == 2 and both[0]["useful_wall_s"] == pytest.approx(60.0, abs=0.01)
    rec = gromacs.whole_run_performance(both, {"wall_s": 30.0, "ns_per_day": 999.0}, 10.0)
    assert rec["segments"] == 2 and rec["wall_s"] == pytest.approx(90.0, abs=0.01)
    assert rec["ns_per_day"] == pytest.approx(0.010 / 90.0 * 86400.0, rel=1e-3)
    assert rec["last_segment_ns_per_day"] == 999.0
    # a run in one invocation keeps mdrun's figures
    assert gromacs.whole_run_performance(first[:1], {"wall_s": 30.0, "ns_per_day": 999.0}, 10.0) == \
        {"segments": 1, "simulated_ps": 10.0}


def test_the_default_keeps_a_plain_lj_cut_off_that_fits_its_box():
    mdp = _mdp("nvt_prod", config.load(REPO / "config/config.yaml"))
    assert mdp["vdwtype"] == "Cut-off" and mdp["DispCorr"] == "EnerPres" and mdp["rvdw"] == "1.2"


def test_an_all_atom_stage_run_twice_on_two_threads_gives_the_same_frames(tmp_path, tiny_config):
    """mdrun -reprod: without it, GROMACS on 2 OpenMP threads gave two fresh default runs
    different minimised structures and so different all-atom datasets (README)."""
    import copy

    from kdcg.aa import system

    cfg = copy.deepcopy(tiny_config)
    cfg["aa_md"]["equilibration_ps"] = 2.0
    top = system.write_topology(cfg, tmp_path / "topol.top")
    gro = system.pack_box(cfg, tmp_path / "box.gro")
    outputs = []
    for run in ("first", "second"):
        gromacs.run_stage("em", cfg, gro, top, tmp_path / run / "em", threads=2)
        gromacs.run_stage("nvt_equil", cfg, tmp_path / run / "em" / "em.gro", top, tmp_path / run / "nvt", threads=2)
        outputs.append([(tmp_path / run / "em" / "em.gro").read_bytes(),
                        (tmp_path / run / "nvt" / "nvt_equil.gro").read_bytes()])
        assert "-reprod" in (tmp_path / run / "nvt" / "run" / "nvt_equil.log").read_text()
    assert outputs[0] == outputs[1]

"""The ``kdcg`` command line: one subcommand per stage, usable without Snakemake."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .errors import InputError, TrainingDiverged


def _species_map(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise InputError(None, f"--species expects RESNAME=SPECIES, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k] = v
    return out


def cmd_check_config(args) -> None:
    from . import config

    config.load(args.config)
    print(f"{args.config}: valid")


def cmd_topology(args) -> None:
    from . import config, system

    system.write_topology(config.load(args.config, partial=True), Path(args.out), Path(args.root))


def cmd_box(args) -> None:
    from . import config, system

    system.pack_box(config.load(args.config, partial=True), Path(args.out), Path(args.root))


def cmd_gromacs(args) -> None:
    from . import config, gromacs

    cfg = config.load(args.config, partial=True)
    record = gromacs.run_stage(args.stage, cfg, Path(args.structure), Path(args.topology), Path(args.stage_dir),
                               threads=args.threads, checkpoint=Path(args.checkpoint) if args.checkpoint else None)
    print(json.dumps(record))


def cmd_mdp(args) -> None:
    from . import config, gromacs

    sys.stdout.write(gromacs.mdp_text(args.stage, config.load(args.config, partial=True)))


def cmd_perf_table(args) -> None:
    from . import gromacs

    from .files import read_json

    records = [read_json(Path(p), "mdrun performance record") for p in args.records]
    gromacs.performance_table(records, Path(args.out))


def cmd_map(args) -> None:
    from . import mapping

    species = _species_map(args.species)
    if args.config:
        from . import config

        cfg = config.load(args.config, partial=True)
        species = {m["resname"]: m["species"] for m in cfg["system"]["molecules"]} | species
    summary = mapping.map_trajectory(Path(args.topology), Path(args.trajectory), Path(args.out), species, args.stride)
    print(json.dumps(summary))


def cmd_prior(args) -> None:
    from . import config, training

    training.write_prior(Path(args.dataset), config.load(args.config, partial=True), Path(args.out))


def cmd_train(args) -> None:
    from . import config, training

    cfg = config.load(args.config, partial=True)
    metrics = training.train(args.variant, args.seed, Path(args.dataset), Path(args.prior), Path(args.out_dir), cfg,
                             labels_path=Path(args.labels) if args.labels else None, threads=args.threads)
    print(json.dumps({k: v for k, v in metrics.items() if k != "loss_history"}))
    if args.mliap:
        from . import md

        md.export_mliap(Path(args.out_dir) / "model.pt", Path(args.mliap))


def cmd_label(args) -> None:
    from . import training

    training.label_frames(Path(args.model), Path(args.dataset), Path(args.out))


def cmd_ensemble_labels(args) -> None:
    from . import training

    training.ensemble_labels([Path(p) for p in args.labels], Path(args.dataset), Path(args.out))


def cmd_ensemble(args) -> None:
    from . import md

    md.build_ensemble([Path(p) for p in args.teachers], Path(args.out))
    if args.mliap:
        md.export_mliap(Path(args.out), Path(args.mliap))


def cmd_export_mliap(args) -> None:
    from . import md

    md.export_mliap(Path(args.model), Path(args.out))


def cmd_md(args) -> None:
    from . import config, md

    cfg = config.load(args.config, partial=True)
    replicas = args.replicas or list(range(1, cfg["md"]["replicas"] + 1))
    results = md.run_replicas(Path(args.model), Path(args.dataset), cfg, replicas, Path(args.out_dir),
                              threads=args.threads)
    for r in results:
        print(json.dumps({k: r[k] for k in ("model", "replica", "status", "reason", "step", "ns_per_day")}))


def cmd_analyze(args) -> None:
    from . import analysis, config

    cfg = config.load(args.config, partial=True)
    if args.dataset:
        analysis.analyze_dataset(Path(args.dataset), cfg["analysis"], Path(args.out))
    elif args.replica_dirs:
        for folder in args.replica_dirs:
            analysis.analyze_replica(Path(folder), Path(args.reference), cfg)
    elif args.trajectory:
        analysis.analyze_trajectory(Path(args.trajectory), cfg["analysis"], Path(args.out),
                                    Path(args.reference) if args.reference else None,
                                    topology=Path(args.topology) if args.topology else None, fmt=args.format,
                                    species_names=args.species, dt_fs=args.timestep_fs)
    else:
        raise InputError(None, "kdcg analyze needs --dataset, --replica-dirs or --trajectory")


def cmd_summarize(args) -> None:
    from . import report

    report.summarize(Path(args.results), args.models, Path(args.reference), Path(args.aa_performance),
                     Path(args.tables), Path(args.figures))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kdcg", description=__doc__)
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("check-config", help="validate a config against the schema")
    s.add_argument("config")
    s.set_defaults(func=cmd_check_config)

    s = sub.add_parser("topology", help="write topol.top and copies of the .itp files")
    s.add_argument("--config", required=True)
    s.add_argument("--out", required=True, help="path of topol.top; .itp copies go to toppar/ beside it")
    s.add_argument("--root", default=".", help="directory the config's paths are relative to")
    s.set_defaults(func=cmd_topology)

    s = sub.add_parser("box", help="pack the initial box with Packmol (.gro, nm)")
    s.add_argument("--config", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--root", default=".")
    s.set_defaults(func=cmd_box)

    s = sub.add_parser("mdp", help="print the .mdp of a GROMACS stage")
    s.add_argument("stage", choices=["em", "nvt_equil", "nvt_prod"])
    s.add_argument("--config", required=True)
    s.set_defaults(func=cmd_mdp)

    s = sub.add_parser("gromacs", help="run one GROMACS stage (resumes from its checkpoint)")
    s.add_argument("stage", choices=["em", "nvt_equil", "nvt_prod"])
    s.add_argument("--config", required=True)
    s.add_argument("--structure", required=True, help=".gro to start from")
    s.add_argument("--topology", required=True)
    s.add_argument("--stage-dir", required=True)
    s.add_argument("--checkpoint", help=".cpt of the previous stage (velocities, thermostat)")
    s.add_argument("--threads", type=int, default=1)
    s.set_defaults(func=cmd_gromacs)

    s = sub.add_parser("perf-table", help="collect mdrun performance records into a TSV")
    s.add_argument("--out", required=True)
    s.add_argument("records", nargs="+")
    s.set_defaults(func=cmd_perf_table)

    s = sub.add_parser("map", help="map a GROMACS tpr + trr (with forces) to a CG dataset NPZ")
    s.add_argument("--topology", required=True, help="GROMACS .tpr (bonds identify molecules)")
    s.add_argument("--trajectory", required=True, help=".trr with positions and forces")
    s.add_argument("--out", required=True, help="dataset .npz")
    s.add_argument("--config", help="take bead species names from this config's molecules")
    s.add_argument("--species", nargs="*", metavar="RESNAME=SPECIES", help="bead species of a residue name")
    s.add_argument("--stride", type=int, default=1)
    s.set_defaults(func=cmd_map)
    s = sub.add_parser("prior", help="the repulsive prior (taper per species pair, strength) from a dataset")
    s.add_argument("--config", required=True)
    s.add_argument("--dataset", required=True)
    s.add_argument("--out", required=True, help="prior .json")
    s.set_defaults(func=cmd_prior)

    s = sub.add_parser("train", help="train a teacher or a student variant (resumes from its last checkpoint)")
    s.add_argument("variant", help="teacher, or a student variant (st_*, se_*)")
    s.add_argument("--seed", type=int, required=True, help="model seed (weights and batch order)")
    s.add_argument("--config", required=True)
    s.add_argument("--dataset", required=True)
    s.add_argument("--prior", required=True)
    s.add_argument("--labels", help="teacher or ensemble labels .npz (students)")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--mliap", help="also write the trained model as a LAMMPS ML-IAP unified file here")
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("label", help="a trained model's forces, per-bead energies and energy on every frame")
    s.add_argument("--model", required=True)
    s.add_argument("--dataset", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_label)

    s = sub.add_parser("ensemble-labels", help="mean (and force spread) of several teachers' labels")
    s.add_argument("--dataset", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("labels", nargs="+")
    s.set_defaults(func=cmd_ensemble_labels)

    s = sub.add_parser("ensemble", help="the teacher ensemble as one model (shared pairs, mean force, spread)")
    s.add_argument("--out", required=True, help="ensemble model .pt")
    s.add_argument("--mliap", help="also write its LAMMPS ML-IAP unified file here")
    s.add_argument("teachers", nargs="+", help="teacher model.pt files")
    s.set_defaults(func=cmd_ensemble)

    s = sub.add_parser("export-mliap", help="write a model as a LAMMPS ML-IAP unified file (pair_style mliap unified)")
    s.add_argument("--model", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_export_mliap)

    s = sub.add_parser("md", help="CG MD replicas of one model in LAMMPS (resume from restarts; unstable runs are recorded)")
    s.add_argument("--model", required=True, help="model .pt (a trained model or an ensemble)")
    s.add_argument("--dataset", required=True, help="dataset .npz: initial frames, masses, box")
    s.add_argument("--config", required=True, help="needs the system and md sections")
    s.add_argument("--replicas", type=int, nargs="*", help="replica numbers (default: 1..md.replicas)")
    s.add_argument("--out-dir", required=True, help="replica-<r>/ folders are written here")
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=cmd_md)

    s = sub.add_parser("analyze", help="RDF, ADF, CDF (and TAE against a reference) of a dataset, replicas or any trajectory")
    s.add_argument("--config", required=True, help="needs the analysis section")
    s.add_argument("--dataset", help="a kdcg dataset .npz: writes the AA reference to --out")
    s.add_argument("--replica-dirs", nargs="*", help="kdcg MD replica folders: writes analysis.json into each")
    s.add_argument("--trajectory", help="any trajectory MDAnalysis reads (LAMMPS dump: format LAMMPSDUMP)")
    s.add_argument("--topology", help="topology for --trajectory, when its format needs one")
    s.add_argument("--format", help="MDAnalysis format of --trajectory (default from the suffix)")
    s.add_argument("--species", nargs="*", help="species names in LAMMPS type order")
    s.add_argument("--timestep-fs", type=float, help="LAMMPS dump: fs per step, for frame times")
    s.add_argument("--reference", help="AA reference .json (TAE against it)")
    s.add_argument("--out", help="output .json")
    s.set_defaults(func=cmd_analyze)

    s = sub.add_parser("summarize", help="tables and figures of every model's analyses")
    s.add_argument("--results", default="results")
    s.add_argument("--reference", required=True)
    s.add_argument("--aa-performance", required=True)
    s.add_argument("--tables", required=True, help="folder for the CSV tables")
    s.add_argument("--figures", required=True, help="folder for the PNG figures")
    s.add_argument("models", nargs="+", help="model names (results/models/<name>, results/md/<name>)")
    s.set_defaults(func=cmd_summarize)
    return p


def limit_threads(n: int) -> None:
    """Hold every thread pool of the job to its --threads before torch, numba or BLAS start.
    numba's parallel kernels (hippynn's) otherwise take every core, and two 1-thread jobs on
    two cores spin against each other several times slower than either alone."""
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        limit_threads(args.threads)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("MDAnalysis").setLevel(logging.WARNING)  # its readers log every header field
    try:
        args.func(args)
    except (InputError, TrainingDiverged) as err:
        # one line, last in the log, so that the workflow can show it
        print(f"kdcg error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - a bug, not bad input: still one line unless asked
        if os.environ.get("KDCG_DEBUG"):
            raise
        problem = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"kdcg error: unexpected {type(err).__name__} in 'kdcg {args.command}': {problem} "
              "(a kdcg bug: rerun with KDCG_DEBUG=1 for the traceback and report it)", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

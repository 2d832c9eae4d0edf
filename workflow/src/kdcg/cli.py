"""The ``kdcg`` command line: one subcommand per stage, usable without Snakemake."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from kdcg.errors import InputError, StorageError, TrainingDiverged, one_line
from kdcg.files import write_json

# the Snakefile's configfile, from the workflow folder: --configfile overlays merge onto it
DEFAULT_BASE = Path("config") / "config.yaml"


def _species_map(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise InputError(None, f"--species expects RESNAME=SPECIES, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k] = v
    return out


def cmd_check_config(args) -> None:
    from kdcg import config

    files = [Path(f) for f in args.config]
    base = Path(args.base)
    merged: dict = {}
    for f in files:
        merged = config.merge(merged, config.read_yaml(f))
    # a complete config stands alone; an overlay is checked on the base it extends
    if args.no_base or set(config.load_schema()["required"]) <= set(merged):
        config.load_merged(files)
        print(f"{' + '.join(map(str, files))}: valid")
    else:
        config.load_merged([base, *files])
        print(f"{' + '.join(map(str, files))}: valid (merged onto {base})")


def cmd_topology(args) -> None:
    from kdcg import config
    from kdcg.aa import system

    system.write_topology(config.load(args.config, partial=True), Path(args.out), Path(args.root))


def cmd_box(args) -> None:
    from kdcg import config
    from kdcg.aa import system

    system.pack_box(config.load(args.config, partial=True), Path(args.out), Path(args.root))


def cmd_gromacs(args) -> None:
    from kdcg import config
    from kdcg.aa import gromacs

    cfg = config.load(args.config, partial=True)
    record = gromacs.run_stage(args.stage, cfg, Path(args.structure), Path(args.topology), Path(args.stage_dir),
                               threads=args.threads, checkpoint=Path(args.checkpoint) if args.checkpoint else None)
    print(json.dumps(record))


def cmd_mdp(args) -> None:
    from kdcg import config
    from kdcg.aa import gromacs

    sys.stdout.write(gromacs.mdp_text(args.stage, config.load(args.config, partial=True)))


def cmd_perf_table(args) -> None:
    from kdcg.aa import gromacs

    from kdcg.files import read_json

    records = [read_json(Path(p), "mdrun performance record") for p in args.records]
    gromacs.performance_table(records, Path(args.out))


def cmd_aa_energy(args) -> None:
    from kdcg.aa import gromacs

    rows = gromacs.energy_series([Path(p) for p in args.edr], Path(args.out))
    print(f"{len(rows)} energy records -> {args.out}")


def cmd_map(args) -> None:
    from kdcg.cg import mapping

    species = _species_map(args.species)
    if args.config:
        from kdcg import config

        cfg = config.load(args.config, partial=True)
        species = {m["resname"]: m["species"] for m in cfg["system"]["molecules"]} | species
    summary = mapping.map_trajectory(Path(args.topology), Path(args.trajectory), Path(args.out), species, args.stride)
    print(json.dumps(summary))


def cmd_prior(args) -> None:
    from kdcg import config
    from kdcg.models import prior

    prior.write_prior(Path(args.dataset), config.load(args.config, partial=True), Path(args.out))


def training_jobs(args) -> list[tuple[str, int, Path, Path | None]]:
    """(variant, seed, out_dir, mliap) of each model a `kdcg train` call trains: its lists
    pair up in order, a single variant standing for all."""
    n = len(args.seed)
    variants = args.variant * n if len(args.variant) == 1 else args.variant
    mliaps = args.mliap or [None] * n
    for flag, values in (("variant", variants), ("--out-dir", args.out_dir), ("--mliap", mliaps)):
        if len(values) != n:
            raise InputError(None, f"kdcg train: {len(values)} {flag} for {n} --seed; give one per model"
                             + (" (or one variant for all)" if flag == "variant" else ""))
    return [(v, s, Path(o), Path(m) if m else None) for v, s, o, m in zip(variants, args.seed, args.out_dir, mliaps)]


def cmd_train(args) -> None:
    from kdcg import config
    from kdcg.training import train as training

    cfg = config.load(args.config, partial=True)
    jobs = training_jobs(args)
    trained = []
    for i, (variant, seed, out_dir, mliap) in enumerate(jobs, start=1):
        if len(jobs) > 1:
            print(f"[kdcg] model {i} of {len(jobs)}: {variant} seed {seed} in {out_dir}", flush=True)
        metrics = training.train(variant, seed, Path(args.dataset), Path(args.prior), out_dir, cfg,
                                 labels_path=Path(args.labels) if args.labels else None, threads=args.threads)
        summary = {k: v for k, v in metrics.items() if k != "loss_history"}
        print(json.dumps(summary))
        if mliap:
            from kdcg.models import mliap_export

            mliap_export.export_mliap(out_dir / "model.pt", mliap)
        trained.append({"out_dir": str(out_dir), "variant": variant, "seed": seed, "metrics": summary})
    if args.record:
        write_json(Path(args.record), {"command": "train", "models": trained}, indent=1)


def cmd_label(args) -> None:
    from kdcg.training import labels

    labels.label_frames(Path(args.model), Path(args.dataset), Path(args.out), threads=args.threads)


def cmd_ensemble_labels(args) -> None:
    from kdcg.training import labels

    labels.ensemble_labels([Path(p) for p in args.labels], Path(args.dataset), Path(args.out))


def cmd_ensemble(args) -> None:
    from kdcg.models import ensemble
    from kdcg.models import mliap_export

    ensemble.build_ensemble([Path(p) for p in args.teachers], Path(args.out))
    if args.mliap:
        mliap_export.export_mliap(Path(args.out), Path(args.mliap))


def cmd_export_mliap(args) -> None:
    from kdcg.models import mliap_export

    mliap_export.export_mliap(Path(args.model), Path(args.out))


def cmd_md(args) -> None:
    from kdcg import config
    from kdcg.md import replicas as md

    cfg = config.load(args.config, partial=True)
    replicas = args.replicas or list(range(1, cfg["md"]["replicas"] + 1))
    results = md.run_replicas(Path(args.model), Path(args.dataset), cfg, replicas, Path(args.out_dir),
                              threads=args.threads)
    summaries = [{k: r[k] for k in ("model", "replica", "status", "reason", "step", "ns_per_day")} for r in results]
    for summary in summaries:
        print(json.dumps(summary))
    if args.record:
        write_json(Path(args.record), {"command": "md", "replicas": summaries}, indent=1)


def cmd_analyze(args) -> None:
    from kdcg.analysis import distributions as analysis
    from kdcg import config

    cfg = config.load(args.config, partial=True)
    if args.dataset:
        analysis.analyze_dataset(Path(args.dataset), cfg["analysis"], Path(args.out))
    elif args.replica_dirs:
        # with --record, each analysis goes next to the record (<record>/<replica folder>/analysis.json)
        # rather than into the replica's folder, whose analysis.json Snakemake's rule analyze_replica makes
        work = Path(args.record).with_suffix("") if args.record else None
        summaries = {}
        for folder in args.replica_dirs:
            out = work / Path(folder).name / "analysis.json" if work else None
            if out:
                out.parent.mkdir(parents=True, exist_ok=True)
            result = analysis.analyze_replica(Path(folder), Path(args.reference), cfg, out=out)
            summaries[folder] = {"status": result["status"], "analysis": str(out or Path(folder) / "analysis.json")}
        if args.record:
            write_json(Path(args.record), {"command": "analyze", "replicas": summaries}, indent=1)
    elif args.trajectory:
        analysis.analyze_trajectory(Path(args.trajectory), cfg["analysis"], Path(args.out),
                                    Path(args.reference) if args.reference else None,
                                    topology=Path(args.topology) if args.topology else None, fmt=args.format,
                                    species_names=args.species, dt_fs=args.timestep_fs, start_ps=args.start_ps,
                                    start_frame=args.start_frame)
    else:
        raise InputError(None, "kdcg analyze needs --dataset, --replica-dirs or --trajectory")


def cmd_summarize(args) -> None:
    from kdcg import config
    from kdcg.report import tables as report

    findings_config = config.load(args.config, partial=True).get("findings") if args.config else None
    report.summarize(Path(args.results), args.models, Path(args.reference), Path(args.aa_performance),
                     Path(args.tables), Path(args.figures), Path(args.aa_energy) if args.aa_energy else None,
                     findings_config)


def cmd_drift_rule(args) -> None:
    from kdcg.analysis import drift_rule

    paths = [Path(p) for p in args.stability]
    path = paths[0]
    rows = drift_rule.read_stability_tables(paths)
    models = drift_rule.model_drift(rows, args.species, args.replicas_needed, path)
    drift_rule.write_table(models, args.species, Path(args.out))
    for m in models:
        print(f"{m.model:<28} {m.drifting} of {m.replicas} replicas drift ({m.unstable} unstable)"
              f"{'  -> drifts' if m.drifts else ''}")
    out = Path(args.out)
    summary = drift_rule.family_summary(models)
    drift_rule.write_summary(summary, out.with_name(out.stem + "_families.csv"))
    epochs = {k: v for p in paths for k, v in drift_rule.read_epochs(p.with_name("training.csv")).items()}
    out.with_suffix(".md").write_text(drift_rule.markdown(rows, models, args.species, epochs))
    for f in summary:
        extra = f", Fisher p vs teachers {f['fisher_p_vs_teachers']:.3g}" if f["fisher_p_vs_teachers"] is not None else ""
        extra += f", same verdict as its own teacher {f['same_verdict_as_own_teacher']}" if f["same_verdict_as_own_teacher"] else ""
        extra += (f" (Fisher p {f['fisher_p_follows_own_teacher']:.3g})"
                  if f["fisher_p_follows_own_teacher"] is not None else "")
        print(f"{f['family']:<4} {f['drifting_models']} of {f['models']} drift ({f['fraction']:.0%}, exact 95 % interval "
              f"{f['ci95_low']:.2f}-{f['ci95_high']:.2f}){extra}")
    v = drift_rule.family_verdict(models, args.family, args.models_needed)
    print(f"family {v['family']}: {v['drifting_models']} of {v['models']} models drift (needed {v['models_needed']}): "
          f"the instability {'appears' if v['appears'] else 'does not appear'}")


def cmd_power(args) -> None:
    from kdcg.analysis import power

    tables = Path(args.tables)
    drift_path = tables / "drift_rule.csv"
    rows = power.plan(power.read_scores(tables / "tae.csv"),
                      power.read_drift(drift_path) if drift_path.exists() else None)
    power.write_table(rows, Path(args.out))
    for r in rows:
        needed = r["models_needed"] if r["models_needed"] is not None else "none"
        print(f"({r['finding']}) {r['quantity']:<5} {r['design']:<62} now {r['models_now']:>2}, needed {needed}"
              f"{'  ' + r['note'] if r['note'] else ''}")


def cmd_findings(args) -> None:
    from kdcg.analysis import findings
    from kdcg.report.tables import write_findings

    tables = Path(args.tables)
    scores = findings.scores_from_tables(tables / "tae.csv", tables / "stability.csv")
    margins = dict(zip(("rdf", "adf", "cdf"), args.margin_tae))
    rows = findings.findings(scores, margins, scored=True)
    write_findings(Path(args.out_dir), rows)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("reproduced", "contradicted", "not resolved")}
    print(f"{len(rows)} rows -> {args.out_dir}/findings.csv: " + ", ".join(f"{n} {v}" for v, n in counts.items()))


def _sub(sub, name: str, summary: str, description: str, example: str):
    """A subcommand with its one-line summary, a description and an example."""
    return sub.add_parser(name, help=summary, description=f"{summary}. {description}".strip(),
                          epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    from kdcg import __version__

    p = argparse.ArgumentParser(
        prog="kdcg", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="kdcg: knowledge distillation of noisy force labels for coarse-grained force fields. "
                    "One subcommand per stage of the workflow, usable without Snakemake; "
                    "'kdcg <command> --help' describes each, with an example.",
        epilog="Units: Angstrom, kcal/mol, kcal/mol/Angstrom, amu, fs (GROMACS stages: nm, kJ/mol, ps).\n"
               "Bad input ends with one line 'kdcg error: <file>: <problem>' and exit status 2.")
    p.add_argument("--version", action="version", version=f"kdcg {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = p.add_subparsers(dest="command", required=True, metavar="command")
    config_help = "kdcg config (YAML; the configuration reference documents every key)"

    s = _sub(sub, "check-config", "validate a config against the schema",
             "Several files are merged in order. An overlay (a config with some sections only) is checked merged "
             "onto --base (config/config.yaml), as Snakemake merges --configfile overlays onto the "
             "Snakefile's config. The files the config names must exist and agree.",
             "kdcg check-config my-overlay.yaml")
    s.add_argument("config", nargs="+", help="config file, or several merged in order (a base, then overlays)")
    s.add_argument("--base", default=str(DEFAULT_BASE), help=f"the config an overlay is merged onto (default:"
                   f" {DEFAULT_BASE}, the Snakefile's, from the workflow folder)")
    s.add_argument("--no-base", action="store_true", help="validate the files alone, not merged onto --base")
    s.set_defaults(func=cmd_check_config)

    s = _sub(sub, "topology", "write topol.top and copies of the .itp files",
             "The force field and every molecule .itp of system.molecules go to toppar/ beside topol.top.",
             "kdcg topology --config config/config.yaml --out aa/topol.top")
    s.add_argument("--config", required=True, help=config_help)
    s.add_argument("--out", required=True, help="path of topol.top; .itp copies go to toppar/ beside it")
    s.add_argument("--root", default=".", help="directory the config's paths are relative to (default: .)")
    s.set_defaults(func=cmd_topology)

    s = _sub(sub, "box", "pack the initial box with Packmol (.gro, nm)",
             "system.molecules in a cube of system.box_edge_A, packmol.tolerance_A apart, seeded by packmol.seed.",
             "kdcg box --config config/config.yaml --out aa/box.gro")
    s.add_argument("--config", required=True, help=config_help)
    s.add_argument("--out", required=True, help="the box, GROMACS .gro")
    s.add_argument("--root", default=".", help="directory the config's paths are relative to (default: .)")
    s.set_defaults(func=cmd_box)

    s = _sub(sub, "mdp", "print the .mdp of a GROMACS stage", "Every value comes from the aa_md section.",
             "kdcg mdp nvt_prod --config config/paper.yaml")
    s.add_argument("stage", choices=["em", "nvt_equil", "nvt_prod"], help="energy minimisation, NVT equilibration or production")
    s.add_argument("--config", required=True, help=config_help)
    s.set_defaults(func=cmd_mdp)

    s = _sub(sub, "gromacs", "run one GROMACS stage (resumes from its checkpoint)",
             "grompp + mdrun in <stage-dir>/run; a rerun with unchanged inputs continues from the checkpoint.",
             "kdcg gromacs nvt_prod --config my.yaml --structure eq.gro --checkpoint eq.cpt "
             "--topology aa/topol.top --stage-dir aa/nvt_prod --threads 8")
    s.add_argument("stage", choices=["em", "nvt_equil", "nvt_prod"], help="energy minimisation, NVT equilibration or production")
    s.add_argument("--config", required=True, help=config_help)
    s.add_argument("--structure", required=True, help=".gro to start from")
    s.add_argument("--topology", required=True, help="topol.top (kdcg topology)")
    s.add_argument("--stage-dir", required=True, help="folder of this stage's files")
    s.add_argument("--checkpoint", help=".cpt of the previous stage (velocities, thermostat)")
    s.add_argument("--threads", type=int, default=1, help="OpenMP threads of mdrun (default 1)")
    s.set_defaults(func=cmd_gromacs)

    s = _sub(sub, "perf-table", "collect mdrun performance records into a TSV",
             "One row per stage: ns/day, hours/ns, wall seconds of the whole run, threads, resumed, invocations.",
             "kdcg perf-table --out aa/performance.tsv aa/*/*.perf.json")
    s.add_argument("--out", required=True, help="the table, TSV")
    s.add_argument("records", nargs="+", help="<stage>.perf.json files written by kdcg gromacs")
    s.set_defaults(func=cmd_perf_table)

    s = _sub(sub, "aa-energy", "potential energy and temperature of GROMACS runs, as CSV",
             "gmx energy on each .edr: time (ps), potential (kJ/mol and kcal/mol), temperature (K), one row per "
             "record; the stage column is the file's name (the all-atom panel of the energy figure).",
             "kdcg aa-energy --out aa/energy.csv aa/nvt_equil/nvt_equil.edr aa/nvt_prod/nvt_prod.edr")
    s.add_argument("--out", required=True, help="the table, CSV")
    s.add_argument("edr", nargs="+", help=".edr energy files written by mdrun")
    s.set_defaults(func=cmd_aa_energy)

    s = _sub(sub, "map", "map a GROMACS tpr + trr (with forces) to a CG dataset NPZ",
             "One bead per molecule: centre-of-mass position, summed force, molecule mass; units converted to "
             "Angstrom and kcal/mol/Angstrom.",
             "kdcg map --topology prod.tpr --trajectory prod.trr --out dataset.npz --species CHOL=Cho CL=Cl UREA=urea")
    s.add_argument("--topology", required=True, help="GROMACS .tpr (bonds identify molecules)")
    s.add_argument("--trajectory", required=True, help=".trr with positions and forces")
    s.add_argument("--out", required=True, help="dataset .npz")
    s.add_argument("--config", help="take bead species names from this config's molecules")
    s.add_argument("--species", nargs="*", metavar="RESNAME=SPECIES", help="bead species of a residue name")
    s.add_argument("--stride", type=int, default=1, help="use every n-th frame (default 1)")
    s.set_defaults(func=cmd_map)

    s = _sub(sub, "prior", "the repulsive prior (taper per species pair, strength) from a dataset",
             "Computed once per dataset so that teachers and students share it.",
             "kdcg prior --config config/config.yaml --dataset dataset.npz --out prior.json")
    s.add_argument("--config", required=True, help=config_help + "; needs the model and prior sections")
    s.add_argument("--dataset", required=True, help="CG dataset .npz (kdcg map)")
    s.add_argument("--out", required=True, help="prior .json")
    s.set_defaults(func=cmd_prior)

    s = _sub(sub, "train", "train teachers or student variants (each resumes from its last checkpoint)",
             "A teacher learns the mapped AA forces; a student the loss of its variant (kdcg.variants). A rerun "
             "of a killed or finished training gives the uninterrupted run's weights. Several models (one "
             "--seed, --out-dir and --mliap each) train one after another in this process, sharing its "
             "imports and set-up: each gets the weights it gets alone.",
             "kdcg train se_ei_ft_faa --seed 1 --labels labels/ensemble.npz --config my.yaml --dataset dataset.npz "
             "--prior prior.json --out-dir models/student-se_ei_ft_faa\n"
             "  kdcg train teacher --seed 1 2 --config my.yaml --dataset dataset.npz --prior prior.json "
             "--out-dir models/teacher-1 models/teacher-2")
    s.add_argument("variant", nargs="+", help="teacher, or a student variant (st_*, se_*); one for all models or one each")
    s.add_argument("--seed", type=int, nargs="+", required=True, help="model seed (weights and batch order), one per model")
    s.add_argument("--config", required=True, help=config_help + "; needs the model, prior and training sections")
    s.add_argument("--dataset", required=True, help="CG dataset .npz (kdcg map)")
    s.add_argument("--prior", required=True, help="prior .json (kdcg prior)")
    s.add_argument("--labels", help="teacher or ensemble labels .npz (students; one file for all models of the call)")
    s.add_argument("--out-dir", nargs="+", required=True,
                   help="model folder (model.pt, metrics.json, checkpoints, plots), one per model")
    s.add_argument("--mliap", nargs="+", help="also write each trained model as a LAMMPS ML-IAP unified file here")
    s.add_argument("--threads", type=int, default=None, help="CPU threads of PyTorch, numba and BLAS (default: all)")
    s.add_argument("--record", help="when every model is trained, a .json listing them and their test metrics "
                                    "(the Snakemake job's output)")
    s.set_defaults(func=cmd_train)

    s = _sub(sub, "label", "a trained model's forces, per-bead energies and energy on every frame",
             "The model must have been trained on this dataset (its fingerprint is checked).",
             "kdcg label --model models/teacher-1/model.pt --dataset dataset.npz --out labels/teacher-1.npz")
    s.add_argument("--model", required=True, help="model .pt (kdcg train)")
    s.add_argument("--dataset", required=True, help="CG dataset .npz")
    s.add_argument("--out", required=True, help="labels .npz")
    s.add_argument("--threads", type=int, default=None,
                   help="CPU threads of PyTorch, numba and BLAS (default: all; with more than one, the forces "
                        "may differ from run to run in their last bit, and the students trained on them with them)")
    s.set_defaults(func=cmd_label)

    s = _sub(sub, "ensemble-labels", "mean (and force spread) of several teachers' labels", "",
             "kdcg ensemble-labels --dataset dataset.npz --out labels/ensemble.npz labels/teacher-*.npz")
    s.add_argument("--dataset", required=True, help="CG dataset .npz the labels were computed on")
    s.add_argument("--out", required=True, help="ensemble labels .npz")
    s.add_argument("labels", nargs="+", help="teacher labels .npz files")
    s.set_defaults(func=cmd_ensemble_labels)

    s = _sub(sub, "ensemble", "the teacher ensemble as one model (shared pairs, mean force, spread)",
             "The teachers must share prior, hyperparameters and dataset.",
             "kdcg ensemble --out models/ensemble/model.pt --mliap models/ensemble/mliap.pt models/teacher-*/model.pt")
    s.add_argument("--out", required=True, help="ensemble model .pt")
    s.add_argument("--mliap", help="also write its LAMMPS ML-IAP unified file here")
    s.add_argument("teachers", nargs="+", help="teacher model.pt files")
    s.set_defaults(func=cmd_ensemble)

    s = _sub(sub, "export-mliap", "write a model as a LAMMPS ML-IAP unified file (pair_style mliap unified)",
             "For a LAMMPS built with ML-IAP and PYTHON: pair_style mliap unified <out> 0; pair_coeff * * <species>.",
             "kdcg export-mliap --model models/teacher-1/model.pt --out teacher-1.mliap.pt")
    s.add_argument("--model", required=True, help="model .pt (kdcg train or kdcg ensemble)")
    s.add_argument("--out", required=True, help="ML-IAP unified .pt")
    s.set_defaults(func=cmd_export_mliap)

    s = _sub(sub, "md", "CG MD replicas of one model in LAMMPS (resume from restarts; unstable runs are recorded)",
             "NVT Nose-Hoover in units real; replica r starts from a frame and velocities set by (md.seed, r).",
             "kdcg md --model models/ensemble/model.pt --dataset dataset.npz --config my.yaml --replicas 1 2 "
             "--out-dir md/ensemble --threads 2")
    s.add_argument("--model", required=True, help="model .pt (a trained model or an ensemble)")
    s.add_argument("--dataset", required=True, help="dataset .npz: initial frames, masses, box")
    s.add_argument("--config", required=True, help=config_help + "; needs the system and md sections")
    s.add_argument("--replicas", type=int, nargs="*", help="replica numbers (default: 1..md.replicas)")
    s.add_argument("--out-dir", required=True, help="replica-<r>/ folders are written here")
    s.add_argument("--threads", type=int, default=None, help="CPU threads of PyTorch, numba and BLAS (default: all)")
    s.add_argument("--record", help="when every replica has ended, a .json with each one's status (the Snakemake job's output)")
    s.set_defaults(func=cmd_md)

    s = _sub(sub, "analyze", "RDF, ADF, CDF (and TAE against a reference) of a dataset, replicas or any trajectory",
             "Exactly one of --dataset (the AA reference), --replica-dirs (kdcg MD replicas) or --trajectory.",
             "kdcg analyze --config config/config.yaml --trajectory run.lammpstrj --species Cho Cl urea "
             "--timestep-fs 1 --reference results/analysis/aa_reference.json --out run.analysis.json")
    s.add_argument("--config", required=True, help=config_help + "; needs the analysis section")
    s.add_argument("--dataset", help="a kdcg dataset .npz: writes the AA reference to --out")
    s.add_argument("--replica-dirs", nargs="*", help="kdcg MD replica folders: writes analysis.json into each")
    s.add_argument("--trajectory", help="any trajectory MDAnalysis reads (LAMMPS dump: format LAMMPSDUMP)")
    s.add_argument("--topology", help="topology for --trajectory, when its format needs one")
    s.add_argument("--format", help="MDAnalysis format of --trajectory (default from the suffix)")
    s.add_argument("--species", nargs="*", help="species names in LAMMPS type order (the reference's order)")
    s.add_argument("--timestep-fs", type=float, help="LAMMPS dump: fs per step, for frame times")
    s.add_argument("--reference", help="AA reference .json (TAE against it)")
    s.add_argument("--start-ps", type=float, help="--trajectory: distributions and TAE from this time on (ps), "
                                                  "to drop an equilibration; time-resolved CDFs keep every frame")
    s.add_argument("--start-frame", type=int, help="--trajectory: likewise from this frame on (0-based)")
    s.add_argument("--out", help="output .json")
    s.add_argument("--record", help="--replica-dirs: a .json listing the analyses, each written to <record without "
                                    ".json>/<replica folder>/analysis.json instead (the Snakemake job's output)")
    s.set_defaults(func=cmd_analyze)

    s = _sub(sub, "summarize", "tables and figures of every model's analyses",
             "Reads <results>/models/<model>/metrics.json and <results>/md/<model>/replica-*/.",
             "kdcg summarize --results results --reference results/analysis/aa_reference.json "
             "--aa-performance results/aa/performance.tsv --tables results/tables --figures results/figures teacher-1 ensemble")
    s.add_argument("--results", default="results", help="results folder of the run (default: results)")
    s.add_argument("--reference", required=True, help="AA reference .json")
    s.add_argument("--aa-performance", required=True, help="performance.tsv of the all-atom runs")
    s.add_argument("--tables", required=True, help="folder for the CSV tables")
    s.add_argument("--figures", required=True, help="folder for the PNG figures")
    s.add_argument("--aa-energy", help="energy.csv of the all-atom runs (kdcg aa-energy): the AA panel of energy.png")
    s.add_argument("--config", help=config_help + "; its findings section decides how findings.csv judges (default: "
                                  "equivalence within the AA sampling noise)")
    s.add_argument("models", nargs="+", help="model names (<results>/models/<name>, <results>/md/<name>)")
    s.set_defaults(func=cmd_summarize)

    s = _sub(sub, "findings", "judge the paper's findings again from a finished run's tables",
             "Reads tae.csv and stability.csv (kdcg summarize) and writes findings.csv and findings.md with the "
             "tests of kdcg.analysis.findings: a committed study is re-analysed without its MD.",
             "kdcg findings --tables docs/study-100ps/tables --margin-tae 0.47 0.12 0.09 --out-dir /tmp/reanalysis")
    s.add_argument("--tables", required=True, help="folder with the run's tae.csv and stability.csv")
    s.add_argument("--margin-tae", type=float, nargs=3, required=True, metavar=("RDF", "ADF", "CDF"),
                   help="equivalence margins per quantity (TAE units), fixed before looking (the run's AA sampling noise)")
    s.add_argument("--out-dir", required=True, help="folder for findings.csv and findings.md")
    s.set_defaults(func=cmd_findings)

    s = _sub(sub, "drift-rule", "which models drift, and whether a family's instability appears (docs/pilot.md)",
             "Reads stability.csv (kdcg summarize). A replica drifts when the time-resolved CDF of any of the "
             "species is flagged or it went unstable; a model drifts when at least --replicas-needed of its "
             "replicas do; the instability appears for --family when at least --models-needed of its models "
             "drift. Writes one row per model, and beside it <out>_families.csv: per family the drifting fraction "
             "with its exact 95 % interval, Fisher's p against the teachers, and how many single-teacher students "
             "share their teacher's verdict (with Fisher's one-sided p that they follow it); and <out>.md: the "
             "verdicts as Markdown with each model's replica figures (training.csv's epochs when it lies beside "
             "stability.csv) and each single-teacher student beside its teacher.",
             "kdcg drift-rule --stability docs/pilot/tables/stability.csv --species Cho urea --out docs/pilot/tables/drift_rule.csv")
    s.add_argument("--stability", nargs="+", required=True,
                   help="a run's tables/stability.csv; several: the models of one experiment run in parts, judged together")
    s.add_argument("--species", nargs="+", required=True,
                   help="species whose CDF drift counts (for reline the paper's Fig. 7 watches Cho and urea)")
    s.add_argument("--replicas-needed", type=int, default=2, help="drifting replicas that make a model drift (default 2)")
    s.add_argument("--family", default="T", help="the family judged (default T, the teachers)")
    s.add_argument("--models-needed", type=int, default=2,
                   help="drifting models of the family that make the instability appear (default 2)")
    s.add_argument("--out", required=True, help="CSV, one row per model")
    s.set_defaults(func=cmd_drift_rule)

    s = _sub(sub, "power", "how many trained models each finding's test needs, planned from a run (docs/study.md)",
             "Reads tae.csv (and drift_rule.csv when present) of a finished run's tables. Takes the run's model "
             "means and spreads as true and gives, per finding and quantity, the models its test needs for 80 % "
             "power at alpha 0.05 (kdcg.analysis.power says which test and which assumptions).",
             "kdcg power --tables docs/pilot-2fs/tables --out docs/pilot-2fs/tables/power.csv")
    s.add_argument("--tables", required=True, help="a run's tables/ folder (tae.csv; drift_rule.csv if present)")
    s.add_argument("--out", required=True, help="CSV, one row per finding, quantity and design")
    s.set_defaults(func=cmd_power)
    return p


def limit_threads(n: int) -> None:
    """Hold every thread pool of the job to its --threads before torch, numba or BLAS start.
    numba's parallel kernels (hippynn's) otherwise take every core, and two 1-thread jobs on
    two cores spin against each other several times slower than either alone."""
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


def quiet_known_noise() -> None:
    """Known-harmless messages out of the job logs: PyTorch's sparse-invariant warning (hippynn
    builds a small sparse tensor once) and MDAnalysis's note that netCDF4 is missing (kdcg
    writes no AMBER files)."""
    import warnings

    warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled", category=UserWarning)
    logging.getLogger("MDAnalysis.coordinates.AMBER").addFilter(_DropMessages("netCDF4 is not available"))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        limit_threads(args.threads)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("MDAnalysis").setLevel(logging.WARNING)  # its readers log every header field
    quiet_known_noise()
    try:
        args.func(args)
    except (InputError, TrainingDiverged, StorageError) as err:
        # one line, last in the log, so that the workflow can show it
        print(f"kdcg error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system's no (full, quota, permissions) anywhere: the file, not a bug
        print(f"kdcg error: {StorageError(err.filename, err.strerror or str(err))}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - a bug, not bad input: still one line unless asked
        if os.environ.get("KDCG_DEBUG"):
            raise
        problem = one_line(err)
        print(f"kdcg error: unexpected {type(err).__name__} in 'kdcg {args.command}': {problem} "
              "(a kdcg bug: rerun with KDCG_DEBUG=1 for the traceback and report it)", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

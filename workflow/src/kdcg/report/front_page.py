"""The front page of the Snakemake report: what was run (config, scale, commit), what its
numbers can and cannot show, the headline figures, and the paper's tables as HTML tables.

Built from the config and the files the summary wrote; a table or figure not yet made is
said to be missing, never invented.
"""

from __future__ import annotations

import base64
import csv
import html
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from kdcg import __version__
from kdcg.variants import STUDENTS, TEACHER


def network_name(model_cfg: dict) -> str:
    kind = model_cfg.get("network", "HipnnQuad")
    order = {"Hipnn": 0, "HipnnVec": 1, "HipnnQuad": 2}[kind]
    return f"{'HIP-NN-TS' if order else 'HIP-NN'} (hippynn {kind}, tensor order {order})"

# the paper's time scales (config/paper.yaml; the paper's Sec. on CG MD): teachers cluster and
# students drift over 100-300 ps of CG MD, after 1 ns of equilibration
PAPER_INSTABILITY_START_PS, PAPER_INSTABILITY_END_PS = 100.0, 300.0
HEADLINE_FIGURES = ("tae_rdf.png", "stability.png")


def git_commit(folder: Path) -> str:
    """Short commit of the checkout, '+ local changes' when it has them; 'unknown' outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit.stdout.strip() + (" + local changes" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"


def md_length_ps(md: dict) -> float:
    return md["equilibration_ps"] + md["n_samples"] * md["sample_interval_ps"]


def scale_rows(config: dict) -> list[tuple[str, str]]:
    s, aa, t, md = config["system"], config["aa_md"], config["training"], config["md"]
    n_frames = int(round(aa["production_ps"] / aa["output_interval_ps"])) + 1
    chosen = t.get("student_variants", list(STUDENTS))
    n_st = sum(STUDENTS[v].teacher == "single" for v in chosen) * len(t["teacher_seeds"])
    n_se = sum(STUDENTS[v].teacher == "ensemble" for v in chosen)
    return [
        ("system", f"{s['name']}: " + ", ".join(f"{m['count']} {m['species']}" for m in s["molecules"])
         + f" in a {s['box_edge_A']} Å cube at {s['temperature_K']} K"),
        ("all-atom MD", f"{aa['equilibration_ps']} ps equilibration, {aa['production_ps']} ps production, "
                        f"{n_frames} frames every {aa['output_interval_ps']} ps"),
        ("models", f"{len(t['teacher_seeds'])} teachers, the ensemble, {n_st} single-teacher and {n_se} ensemble students"),
        ("network", f"hippynn {config['model']['network']}, {config['model']['n_features']} features, {config['model']['n_sensitivities']} "
                    f"sensitivities, cut-off {config['model']['dist_hard_max_A']} Å"),
        ("training", f"at most {t['max_epochs']} epochs, early stopping after {t['termination_patience']} without improvement"
                     + (f" by {100 * t['min_improvement']:g} %" if t["min_improvement"] else "")),
        ("CG MD", f"{md['replicas']} replicas × {md_length_ps(md):g} ps per model at {md['timestep_fs']} fs "
                  f"({md['equilibration_ps']} ps equilibration, {md['n_samples']} frames every {md['sample_interval_ps']} ps)"),
    ]


def what_it_shows(config: dict) -> str:
    """What this scale's numbers can and cannot show, from its own settings."""
    length = md_length_ps(config["md"])
    if length >= PAPER_INSTABILITY_END_PS:
        return (f"Each replica runs {length:g} ps of CG MD, long enough for the instabilities the paper reports "
                f"(they develop over 100-300 ps): its TAEs, drift flags and unstable counts can test the paper's findings, "
                f"within the error bars of its {config['md']['replicas']} replicas.")
    if config["training"]["max_epochs"] >= 50 and length >= PAPER_INSTABILITY_START_PS:
        return (f"Each replica runs {length:g} ps of CG MD, into the 100-300 ps over which the paper's instabilities "
                f"develop: a model that drifts or blows up within {length:g} ps is seen, one that would later is not. "
                f"Models train to early stopping. Its TAEs, drift flags and unstable counts compare the models at this "
                f"time scale within the error bars of {config['md']['replicas']} replicas per model "
                "(tables/findings.csv tests each of the paper's findings).")
    if config["training"]["max_epochs"] >= 50 and length >= 10:
        return (f"Each replica runs {length:g} ps of CG MD, the onset of the 100-300 ps over which the paper's "
                f"instabilities develop: a model that drifts or blows up within {length:g} ps is seen, one that would "
                f"later is not. Models train to early stopping. Its TAEs compare the models at this time scale within "
                f"the error bars of {config['md']['replicas']} replicas per model (tables/findings.csv tests each of "
                "the paper's findings).")
    return (f"Each replica runs {length:g} ps of CG MD; the paper's instabilities develop over 100-300 ps, so this run "
            f"cannot show them. Its models trained at most {config['training']['max_epochs']} epochs. The numbers show that "
            "every stage ran and what it measured; they do not test the paper's findings (config/paper.yaml, or a study "
            "config at the paper's time scales, does).")


def _table(header: list[str], rows: list[list], caption: str) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return (f"<table border='1' style='border-collapse:collapse;font-size:small;margin:0.5em 0'>"
            f"<caption style='caption-side:top;text-align:left;font-weight:bold'>{html.escape(caption)}</caption>"
            f"\n<tr>{head}</tr>\n{body}\n</table>")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _read_csv(path: Path) -> list[dict] | None:
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _num(s: str):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def tae_overview(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Per family and variant: the summed mean TAE of each quantity over its keys, and the
    unstable count (the paper's Figs. 4-6 in one table)."""
    out: dict[tuple[str, str], dict] = {}
    for r in rows:
        entry = out.setdefault((r["family"], r["variant"]), {"unstable": f"{r['n_unstable']}/{r['n_total']}"})
        value = _num(r["tae_mean"])
        entry.setdefault(r["quantity"], 0.0)
        if entry[r["quantity"]] is not None:
            entry[r["quantity"]] = None if value is None else entry[r["quantity"]] + value
    header = ["family", "variant", "Σ TAE RDF", "Σ TAE ADF", "Σ TAE CDF", "unstable replicas"]
    return header, [[f, v, e.get("rdf"), e.get("adf"), e.get("cdf"), e["unstable"]] for (f, v), e in out.items()]


def variant_rows() -> list[list]:
    """Tables 2 and 3 of the paper, from kdcg.variants."""
    rows = []
    for v in (TEACHER, *STUDENTS.values()):
        rows.append([v.name, v.teacher or "-", v.w_energy, v.w_bead_energy, v.w_teacher_forces, v.w_aa_forces])
    return rows


def _figure(path: Path, title: str) -> str:
    if not path.is_file():
        return f"<p><i>{html.escape(path.name)} not made yet.</i></p>"
    # wrapped: docutils refuses lines over 10,000 characters, and data URLs ignore whitespace
    data = base64.encodebytes(path.read_bytes()).decode().strip()
    return (f"<figure style='margin:0.5em 0'><img style='max-width:100%' src='data:image/png;base64,\n{data}'/>\n"
            f"<figcaption>{html.escape(title)}</figcaption></figure>")


def front_page(config: dict, configfiles: list[str], checkout: Path) -> str:
    """The front page as HTML lines (each short: it goes into an rst raw block)."""
    results = Path(config["results_dir"])
    tables, figures = results / "tables", results / "figures"
    parts = [f"<h2>What was run</h2><p>config: <b>{html.escape(', '.join(configfiles) or 'config/config.yaml')}</b>; "
             f"results in <b>{html.escape(str(results))}/</b>; kdcg {__version__}, commit "
             f"<b>{html.escape(git_commit(checkout))}</b>; report made "
             f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.</p>",
             _table(["", "this run"], scale_rows(config), "Scale"),
             f"<p><b>What these numbers can show.</b> {html.escape(what_it_shows(config))}</p>",
             "<h2>Headline figures</h2>"]
    parts += [_figure(figures / name, caption) for name, caption in
              zip(HEADLINE_FIGURES, ("TAE of every RDF against all-atom per model family and variant (Fig. 4).",
                                     "MD stability of every replica of every model."))]
    parts.append("<h2>Tables</h2>")
    summary = _read_csv(tables / "tae_summary.csv")
    if summary is None:
        parts.append("<p><i>tae_summary.csv not made yet.</i></p>")
    else:
        parts.append(_table(*tae_overview(summary), "TAE against all-atom, summed over each quantity's keys "
                                                     "(mean over replicas and seeds; tae_summary.csv has each key with its std)"))
    for name, caption, cols in (
            ("performance.csv", "Table 4: CG MD speed (ns/day) per model and family, and the all-atom run",
             ["level", "name", "family", "n_replicas", "ns_per_day_mean", "ns_per_day_std", "ms_per_step_mean"]),
            ("training.csv", "Test-split force errors of every trained model (kcal/mol/Å)",
             ["model", "force_mae_vs_aa", "force_rmse_vs_aa", "force_r2_vs_aa", "force_r2_vs_teacher", "epochs"])):
        rows = _read_csv(tables / name)
        if rows is None:
            parts.append(f"<p><i>{name} not made yet.</i></p>")
        else:
            parts.append(_table(cols, [[r.get(c) for c in cols] for r in rows], caption))
    m = config["model"]
    parts.append(_table(["hyperparameter", "value"],
                        [["network", network_name(m)],
                         ["interaction layers", m["n_interaction_layers"]], ["atom layers", m["n_atom_layers"]],
                         ["features", m["n_features"]], ["sensitivities", m["n_sensitivities"]],
                         ["soft min / soft max / hard max (Å)",
                          f"{m['dist_soft_min_A']} / {m['dist_soft_max_A']} / {m['dist_hard_max_A']}"],
                         ["learning rate", config["training"]["learning_rate"]],
                         ["batch size", config["training"]["batch_size"]]],
                        "Table 1: model hyperparameters (teachers and students alike)"))
    parts.append(_table(["variant", "teacher", "w_E (system energy)", "w_e (per-bead energies)", "w_T (teacher forces)",
                         "w_AA (all-atom forces)"], variant_rows(),
                        "Tables 2 and 3: each model's loss, a weighted sum of RMSE + MAE terms"))
    return "\n".join(parts)

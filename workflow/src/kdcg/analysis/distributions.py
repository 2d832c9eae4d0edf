"""Structural validation of CG trajectories against the all-atom reference.

One code path computes, for any trajectory (the mapped AA dataset, a kdcg MD replica, or a
trajectory written elsewhere that MDAnalysis reads):

- RDF of every species pair, periodic minimum image, normalised by the ideal-gas shell count,
  on a uniform r grid up to half the shortest box edge;
- ADF of the configured triplets (central bead in the middle) at each neighbour cutoff, a
  normalised density on a uniform angle grid in degrees;
- CDF per species: merge distances of single-linkage clustering under periodic boundaries
  (= minimum-spanning-tree edges of minimum-image distances), a normalised density in r,
  for the whole run and for consecutive time windows (the paper's Fig. 7), with a drift flag;
- TAE (Eq. 9) of each distribution against the reference.

For a replica, the distributions and TAE use the ``md.n_samples`` frames after the configured
``md.equilibration_ps`` (the paper: 1 ns, then 100 frames every 5 ps), the same frames for every
model; the time pymbar detects on the potential energy is reported and flags a replica "not
equilibrated" when it comes later, without moving the cut. The time-resolved CDFs and their
drift flag cover the whole run from t = 0, where teachers that cluster do so.
Everything lands in one JSON per trajectory, grids and cutoffs next to the values.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import numpy as np

from kdcg.cg import structure
from kdcg.errors import InputError
from kdcg.files import read_json, write_json
from kdcg.provenance import check_fingerprint, dataset_fingerprint

log = logging.getLogger(__name__)

QUANTITIES = ("rdf", "adf", "cdf")


def rdf_key(a: str, b: str) -> str:
    return f"{a}-{b}"


def adf_key(triplet, cutoff_A: float) -> str:
    return f"{'-'.join(triplet)} rc={cutoff_A:g}"


def distributions(R, cells, species, species_names, acfg: dict, times_ps=None, quantities=QUANTITIES,
                  used=None) -> dict:
    """Every RDF, ADF and CDF of a trajectory.

    R (frames, beads, 3) A; cells (frames, 3, 3) orthorhombic A; species (beads,) 1-based
    indices into species_names. Returns a JSON-ready dict: grids (bin centres and widths),
    values per key, frame count, and the CDF per time window. ``quantities`` limits the work
    (the benchmark times the RDFs alone). ``used`` (a mask over frames, default all) picks the
    frames of the distributions and TAE; the time-resolved CDFs always cover every frame, so
    that clustering during the equilibration is seen.
    """
    R = np.asarray(R, dtype=np.float64)
    cells = np.asarray(cells, dtype=np.float64).reshape(-1, 3, 3)
    if len(cells) == 1 and len(R) > 1:
        cells = np.repeat(cells, len(R), axis=0)
    species = np.asarray(species).reshape(-1)
    names = [str(s) for s in species_names]
    if len(R) == 0:
        raise ValueError("no frames to analyse")
    used = np.ones(len(R), dtype=bool) if used is None else np.asarray(used, dtype=bool)
    if not used.any():
        raise ValueError("no frames selected for the distributions")
    edges_all = np.stack([np.diag(c) for c in cells])
    if np.abs(cells - np.stack([np.diag(e) for e in edges_all])).max() > 1e-6:
        raise ValueError("only orthorhombic boxes are supported")
    idx = {n: np.flatnonzero(species == k + 1) for k, n in enumerate(names)}
    # grids
    rdf_edges = structure.uniform_grid(0.5 * edges_all.min(), acfg["rdf_dr_A"])
    adf_edges = structure.uniform_grid(180.0, acfg["adf_dtheta_deg"])
    cdf_edges = structure.uniform_grid(acfg["cdf_r_max_A"], acfg["cdf_dr_A"])
    nb_rdf = len(rdf_edges) - 1
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i:]]
    pair_code = np.full((len(names) + 1, len(names) + 1), -1)
    for k, (a, b) in enumerate(pairs):
        ia, ib = names.index(a) + 1, names.index(b) + 1
        pair_code[ia, ib] = pair_code[ib, ia] = k
    triplets = [tuple(t) for t in acfg["adf_triplets"]]
    for t in triplets:
        missing = [s for s in t if s not in idx]
        if missing:
            raise ValueError(f"ADF triplet {t}: species {missing} not in {names}")
    cutoffs = [float(c) for c in acfg["adf_cutoffs_A"]]

    iu = np.triu_indices(len(species), 1)
    codes = pair_code[species[iu[0]], species[iu[1]]]
    rdf_counts = np.zeros(len(pairs) * nb_rdf)
    shell = 4.0 / 3.0 * np.pi * (rdf_edges[1:] ** 3 - rdf_edges[:-1] ** 3)
    ideal = np.zeros((len(pairs), nb_rdf))
    n_of = {n: len(i) for n, i in idx.items()}
    pair_norm = np.array([n_of[a] * (n_of[a] - 1) / 2.0 if a == b else float(n_of[a] * n_of[b]) for a, b in pairs])
    adf_counts = {adf_key(t, c): np.zeros(len(adf_edges) - 1) for t in triplets for c in cutoffs}
    cdf_frame_counts = {n: np.zeros((len(R), len(cdf_edges) - 1)) for n in names}
    cdf_edges_per_frame = {n: max(len(i) - 1, 0) for n, i in idx.items()}

    for f, (x, edges) in enumerate(zip(R, edges_all)):
        r = structure.frame_distances(x, edges)
        for n, i in idx.items() if "cdf" in quantities else ():
            if len(i) > 1:
                merge = structure.mst_edge_lengths(r[np.ix_(i, i)], cdf_edges[-1])
                cdf_frame_counts[n][f] = np.histogram(merge, bins=cdf_edges)[0]
        if not used[f]:
            continue
        ru = r[iu]
        b = np.floor(ru / acfg["rdf_dr_A"]).astype(np.int64)
        ok = b < nb_rdf
        rdf_counts += np.bincount(codes[ok] * nb_rdf + b[ok], minlength=len(pairs) * nb_rdf)
        ideal += pair_norm[:, None] / np.prod(edges) * shell[None, :]
        for t in triplets if "adf" in quantities else ():
            angles = structure.angles_deg(x, edges, r, idx[t[1]], idx[t[0]], idx[t[2]], cutoffs, same=t[0] == t[2])
            for c, a in zip(cutoffs, angles):
                adf_counts[adf_key(t, c)] += np.histogram(a, bins=adf_edges)[0]

    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(ideal > 0, rdf_counts.reshape(len(pairs), nb_rdf) / ideal, 0.0)
    dth, dr_cdf = acfg["adf_dtheta_deg"], acfg["cdf_dr_A"]

    def density(counts, total, width):
        return (counts / (total * width)).tolist() if total > 0 else [0.0] * len(counts)

    n_used = int(used.sum())
    out = {
        "n_frames": n_used,
        "grids": {
            "rdf": {"r_A": _centres(rdf_edges), "dr_A": acfg["rdf_dr_A"]},
            "adf": {"theta_deg": _centres(adf_edges), "dtheta_deg": dth, "cutoffs_A": cutoffs,
                    "triplets": [list(t) for t in triplets]},
            "cdf": {"r_A": _centres(cdf_edges), "dr_A": dr_cdf},
        },
        "rdf": {rdf_key(a, b_): g[k].tolist() for k, (a, b_) in enumerate(pairs)},
        # a density over angles: integrates to 1 over [0, 180] degrees
        "adf": {k: density(c, c.sum(), dth) for k, c in adf_counts.items()},
        # merge distances per frame are n_species - 1; the density integrates to the fraction
        # of merges within the grid
        "cdf": {n: density(c[used].sum(0), cdf_edges_per_frame[n] * n_used, dr_cdf) for n, c in cdf_frame_counts.items()},
    }
    out["cdf_windows"] = _cdf_windows(cdf_frame_counts, cdf_edges_per_frame, acfg, dr_cdf, times_ps)
    return out


def _centres(edges) -> list[float]:
    return (0.5 * (edges[1:] + edges[:-1])).tolist()


def _cdf_windows(frame_counts: dict, per_frame: dict, acfg: dict, dr: float, times_ps) -> dict:
    """CDF per consecutive window of frames, and a drift flag per species (progressive
    clustering): the TAE between the first and last window is above ``analysis.cdf_drift_tae``
    and above twice its noise level."""
    n_frames = len(next(iter(frame_counts.values())))
    n_win = max(1, min(acfg["cdf_windows"], n_frames))
    bounds = np.linspace(0, n_frames, n_win + 1).round().astype(int)
    times = np.asarray(times_ps if times_ps is not None else np.arange(n_frames), dtype=float)
    out = {"windows": [], "drift": {}}
    for w in range(n_win):
        lo, hi = bounds[w], bounds[w + 1]
        entry = {"t_start_ps": float(times[lo]), "t_end_ps": float(times[hi - 1]), "n_frames": int(hi - lo), "cdf": {}}
        for n, c in frame_counts.items():
            total = per_frame[n] * (hi - lo)
            entry["cdf"][n] = (c[lo:hi].sum(0) / (total * dr)).tolist() if total else [0.0] * c.shape[1]
        out["windows"].append(entry)
    # the first-last TAE of a steady run is not zero: finite windows are noisy. The noise
    # level is the TAE between the even and the odd frames of those two windows pooled.
    edge_frames = np.r_[bounds[0]:bounds[1], bounds[-2]:bounds[-1]]
    for n, c in frame_counts.items():
        first, last = out["windows"][0]["cdf"][n], out["windows"][-1]["cdf"][n]
        d = structure.tae(first, last, dr) if n_win > 1 else 0.0
        evens, odds = edge_frames[0::2], edge_frames[1::2]
        noise = 0.0
        if n_win > 1 and len(odds) and per_frame[n]:
            noise = structure.tae(c[evens].sum(0) / (per_frame[n] * len(evens) * dr),
                                  c[odds].sum(0) / (per_frame[n] * len(odds) * dr), dr)
        out["drift"][n] = {"tae_first_last": d, "tae_noise": noise,
                           "drifting": bool(d > acfg["cdf_drift_tae"] and d > 2.0 * noise)}
    return out


def tae_against(dist: dict, reference: dict, reference_path: Path | str | None = None) -> dict:
    """TAE of every distribution against the reference, on the same grids and keys."""
    for q in QUANTITIES:
        if dist["grids"][q] != reference["grids"][q]:
            raise InputError(reference_path, f"{q} grids differ from the reference's (different box or config)")
        missing = sorted(set(dist[q]) - set(reference[q]))
        if missing:
            raise InputError(reference_path, f"the reference has no {q.upper()} {', '.join(missing)}: its species are "
                                             f"{reference.get('species_names')}")
    widths = {"rdf": dist["grids"]["rdf"]["dr_A"], "adf": dist["grids"]["adf"]["dtheta_deg"],
              "cdf": dist["grids"]["cdf"]["dr_A"]}
    return {q: {k: structure.tae(v, reference[q][k], widths[q]) for k, v in dist[q].items()} for q in QUANTITIES}


def check_species(names: list[str], acfg: dict, reference: dict | None, path: Path, reference_path: Path | None) -> None:
    """The species a trajectory's types are named by must be those of the reference, in the
    same order (LAMMPS type k is the k-th name), and must include every ADF triplet's."""
    if reference is not None and list(names) != list(reference["species_names"]):
        ref = list(reference["species_names"])
        how = "in another order" if sorted(names) == sorted(ref) else "different"
        raise InputError(path, f"species names {list(names)} are {how} than the reference {reference_path}'s {ref}; "
                               "name the types in the reference's order (type k is the k-th name)")
    for t in acfg["adf_triplets"]:
        unknown = sorted({s for s in t if s not in names})
        if unknown:
            raise InputError(path, f"its species are {list(names)}, but the ADF triplet {list(t)} of the config names "
                                   f"{unknown}: pass --species with the names in type order")


# --------------------------------------------------------------------------- equilibration


def read_thermo(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "thermo file not found")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "potential_kcal_mol" not in rows[0]:
        raise InputError(path, "not a kdcg thermo.csv (no potential_kcal_mol column)")
    try:
        return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    except (TypeError, ValueError) as err:
        raise InputError(path, f"a row is not numbers (truncated?): {err}") from None


def detect_equilibration(time_ps: np.ndarray, potential: np.ndarray) -> dict:
    """pymbar's automated equilibration detection on a potential-energy series."""
    from pymbar import timeseries

    finite = np.isfinite(potential)
    if finite.sum() < 4:
        return {"t_detected_ps": float(time_ps[-1]) if len(time_ps) else 0.0, "statistical_inefficiency": None,
                "n_effective": 0.0}
    t0, g, neff = timeseries.detect_equilibration(potential[finite])
    return {"t_detected_ps": float(time_ps[finite][t0]), "statistical_inefficiency": float(g), "n_effective": float(neff)}


# --------------------------------------------------------------------------- trajectories


def read_trajectory(path: Path, topology: Path | None = None, fmt: str | None = None,
                    species_names: list[str] | None = None, dt_fs: float | None = None) -> dict:
    """Positions, boxes, bead species and times of any trajectory MDAnalysis reads.

    A LAMMPS text dump (format LAMMPSDUMP, ``id type x y z``) needs no topology; its numeric
    types are the 1-based species, named by ``species_names`` in type order. Otherwise the
    atom names (or types) are the species.
    """
    import MDAnalysis as mda

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "trajectory not found")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file: the trajectory has no frames")
    if fmt is None and path.suffix in (".lammpstrj", ".dump"):
        fmt = "LAMMPSDUMP"
    kwargs = {"format": fmt} if fmt else {}
    if fmt == "LAMMPSDUMP" and dt_fs is not None:
        kwargs["dt"] = dt_fs / 1000.0
    try:
        u = mda.Universe(str(topology), str(path), **kwargs) if topology else mda.Universe(str(path), **kwargs)
    except Exception as err:  # noqa: BLE001 - MDAnalysis raises many kinds
        raise InputError(path, f"MDAnalysis cannot read it: {err}") from None
    labels = np.asarray(u.atoms.types if hasattr(u.atoms, "types") else u.atoms.names).astype(str)
    if species_names is None:
        species_names = list(dict.fromkeys(labels.tolist()))
        if all(s.isdigit() for s in species_names):
            species_names = [str(k) for k in range(1, max(int(s) for s in species_names) + 1)]
    if all(s.isdigit() for s in labels):
        species = labels.astype(int)
        if species.max() > len(species_names):
            raise InputError(path, f"atom type {species.max()} but only {len(species_names)} species names")
        if len(species_names) > species.max():
            raise InputError(path, f"{len(species_names)} species names {list(species_names)} but its atoms have types "
                                   f"1..{species.max()} only: one name per type, in type order")
    else:
        unknown = sorted(set(labels) - set(species_names))
        if unknown:
            raise InputError(path, f"atom types {unknown} not among the species {species_names}")
        species = np.array([species_names.index(s) + 1 for s in labels])
    R, cells, times = [], [], []
    try:
        for ts in u.trajectory:
            if ts.dimensions is None or not np.allclose(ts.dimensions[3:], 90.0):
                raise InputError(path, f"frame {ts.frame}: an orthorhombic periodic box is needed")
            R.append(np.mod(ts.positions.astype(np.float64), ts.dimensions[:3]))
            cells.append(np.diag(ts.dimensions[:3]).astype(np.float64))
            times.append(ts.time)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - MDAnalysis raises many kinds for a damaged file
        raise InputError(path, f"frame {len(R)} cannot be read: {type(err).__name__}: {err}") from None
    if not R:
        raise InputError(path, "no frames")
    dropped = 0
    if fmt == "LAMMPSDUMP":
        # MDAnalysis skips a last frame that was cut off mid-write without a word
        dropped = _dump_frame_headers(path) - len(R)
        if dropped > 0:
            log.warning("%s: its last %d frame(s) are incomplete (cut mid-write?) and were left out; %d frames used",
                        path, dropped, len(R))
    R = np.array(R)
    if not np.isfinite(R).all():
        raise InputError(path, "non-finite positions")
    return {"R": R, "cells": np.array(cells), "species": species, "species_names": list(species_names),
            "time_ps": np.array(times, dtype=float), "frames_dropped": max(dropped, 0)}


def _dump_frame_headers(path: Path) -> int:
    """How many frames a LAMMPS text dump (plain, .gz or .bz2) began to write."""
    import bz2
    import gzip

    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix, open)
    n = 0
    with opener(path, "rt") as fh:
        for line in fh:
            n += line.startswith("ITEM: TIMESTEP")
    return n


# --------------------------------------------------------------------------- files


def _write_json(path: Path, obj) -> None:
    write_json(path, obj, allow_nan=False)


#: what the analyses and the report read of a replica's result.json (kdcg.md.replicas writes them all)
REPLICA_RESULT_KEYS = ("model", "replica", "status", "species_names", "timestep_fs", "total_steps", "equilibration_ps",
                       "sample_interval_ps")


def load_json(path: Path, what: str, required: tuple[str, ...] = ()) -> dict:
    """A JSON object; one line naming the file and the keys it lacks, if it lacks any of ``required``."""
    record = read_json(path, what)
    if not isinstance(record, dict):
        raise InputError(path, f"{what} is not a JSON object")
    missing = [k for k in required if k not in record]
    if missing:
        raise InputError(path, f"{what} lacks {', '.join(repr(k) for k in missing)} (written by another kdcg,"
                               " or edited by hand? rerun the job that writes it)")
    return record


def analyze_dataset(dataset_path: Path, acfg: dict, out: Path) -> dict:
    """The all-atom reference: every distribution of the mapped AA frames."""
    from kdcg.cg.mapping import load_dataset

    data = load_dataset(dataset_path)
    dist = distributions(data["R"], data["cell"], data["Z"][0], data["species_names"], acfg, data.get("time_ps"))
    result = {"source": str(dataset_path), "kind": "all-atom reference", "species_names": [str(s) for s in data["species_names"]],
              "dataset": dataset_fingerprint(data), "analysis": acfg, **dist,
              "sampling_noise_tae": sampling_noise(data, acfg)}
    _write_json(out, result)
    log.info("AA reference: %d frames -> %s", dist["n_frames"], out)
    return result


def sampling_noise(data: dict, acfg: dict) -> dict:
    """TAE between the distributions of the first and the second half of the AA frames: the
    reference's own sampling noise, the baseline below which differences between models mean
    nothing (drawn in the TAE figures)."""
    n = len(data["R"])
    if n < 2:
        return {"method": "first half vs second half of the AA frames", "n_frames": [n, 0], **{q: {} for q in QUANTITIES}}
    halves = []
    for sel in (np.arange(n) < n // 2, np.arange(n) >= n // 2):
        halves.append(distributions(data["R"], data["cell"], data["Z"][0], data["species_names"], acfg,
                                    data.get("time_ps"), used=sel))
    return {"method": "first half vs second half of the AA frames", "n_frames": [n // 2, n - n // 2],
            **tae_against(halves[0], halves[1])}


def analyze_replica(replica_dir: Path, reference_path: Path, cfg: dict, out: Path | None = None) -> dict:
    """Analysis of one kdcg MD replica: equilibration, distributions, TAE against the reference."""
    replica_dir = Path(replica_dir)
    acfg = cfg["analysis"]
    result = load_json(replica_dir / "result.json", "replica result", REPLICA_RESULT_KEYS)
    reference = load_json(reference_path, "AA reference")
    # the replica's frames and the reference must come from one dataset
    ref_dataset = reference.get("dataset") or {}
    check_fingerprint(result.get("dataset"), {**ref_dataset, "path": f"{ref_dataset.get('path')} (of {reference_path})"},
                      replica_dir / "result.json", "replica")
    record = {"model": result["model"], "replica": result["replica"], "status": result["status"],
              "reason": result.get("reason"), "analysis": acfg}
    out = Path(out) if out else replica_dir / "analysis.json"
    if result["status"] != "stable":
        log.warning("%s replica %s is unstable (%s): no distributions", result["model"], result["replica"], result["reason"])
        _write_json(out, record)
        return record
    thermo = read_thermo(replica_dir / "thermo.csv")
    eq = detect_equilibration(thermo["time_ps"], thermo["potential_kcal_mol"])
    traj = read_trajectory(replica_dir / "trajectory.lammpstrj", species_names=result["species_names"],
                           dt_fs=result["timestep_fs"])
    eq.update(sampling_frames(traj["time_ps"], result, replica_dir / "trajectory.lammpstrj"))
    keep = np.asarray(eq.pop("mask"))
    # every family is compared on the same frames: pymbar's time flags, it does not move the cut
    eq["equilibrated"] = bool(eq["t_detected_ps"] <= eq["t_configured_ps"] + 1e-9)
    if not eq["equilibrated"]:
        log.warning("%s replica %s: pymbar detects equilibration at %.2f ps, after the configured %.2f ps",
                    result["model"], result["replica"], eq["t_detected_ps"], eq["t_configured_ps"])
    dist = distributions(traj["R"], traj["cells"], traj["species"], traj["species_names"], acfg, traj["time_ps"],
                         used=keep)
    record.update(dist)
    record["equilibration"] = eq
    record["tae"] = tae_against(dist, reference, reference_path)
    record["ns_per_day"] = result.get("ns_per_day")
    _write_json(out, record)
    log.info("%s replica %s: %d frames after %.2f ps; TAE rdf %.3f adf %.3f cdf %.3f (sums)", result["model"],
             result["replica"], eq["n_frames_used"], eq["t_used_ps"],
             *(sum(record["tae"][q].values()) for q in QUANTITIES))
    return record


def sampling_frames(time_ps: np.ndarray, result: dict, where: Path | None = None) -> dict:
    """The frames of the TAE: the md.n_samples frames after the configured equilibration, as
    the paper (1 ns, then 100 frames every 5 ps): frames later than md.equilibration_ps, the
    one at that time excluded."""
    t_cut = float(result["equilibration_ps"])
    total_ps = result["total_steps"] * result["timestep_fs"] / 1000.0
    n_samples = int(round((total_ps - t_cut) / result["sample_interval_ps"]))
    after = np.flatnonzero(np.asarray(time_ps) > t_cut + 1e-6)[:n_samples]
    mask = np.zeros(len(time_ps), dtype=bool)
    mask[after] = True
    out = {"t_configured_ps": t_cut, "t_used_ps": t_cut, "n_samples": n_samples, "n_frames_used": int(mask.sum()),
           "mask": mask}
    if mask.sum() < n_samples:
        out["note"] = f"{int(mask.sum())} frames after {t_cut:g} ps, not {n_samples}"
    if not mask.any():
        raise InputError(where, f"no trajectory frame after the equilibration ({t_cut:g} ps)")
    return out


def analyze_trajectory(path: Path, acfg: dict, out: Path, reference_path: Path | None = None,
                       start_ps: float | None = None, start_frame: int | None = None, **read_kwargs) -> dict:
    """`kdcg analyze` on a trajectory written anywhere. The distributions and TAE use the
    frames from ``start_ps`` (ps) or ``start_frame`` (0-based) on, all frames by default; the
    time-resolved CDFs cover every frame."""
    reference = load_json(reference_path, "reference") if reference_path else None
    traj = read_trajectory(path, **read_kwargs)
    check_species(traj["species_names"], acfg, reference, Path(path), reference_path)
    used = np.ones(len(traj["R"]), dtype=bool)
    if start_ps is not None:
        used &= traj["time_ps"] >= start_ps - 1e-9
    if start_frame is not None:
        used &= np.arange(len(used)) >= start_frame
    if not used.any():
        raise InputError(path, f"no frame at or after the start ({start_ps} ps, frame {start_frame}); its frames span "
                               f"{traj['time_ps'][0]:g}-{traj['time_ps'][-1]:g} ps, {len(used)} frames")
    dist = distributions(traj["R"], traj["cells"], traj["species"], traj["species_names"], acfg, traj["time_ps"],
                         used=used)
    record = {"source": str(path), "species_names": traj["species_names"], "analysis": acfg,
              "first_frame_used": int(np.argmax(used)), "t_start_ps": float(traj["time_ps"][used][0]), **dist}
    if traj.get("frames_dropped"):
        record["frames_dropped"] = traj["frames_dropped"]
    if reference is not None:
        record["tae"] = tae_against(dist, reference, reference_path)
    _write_json(out, record)
    return record


def nan_to_none(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x

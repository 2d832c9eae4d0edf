"""Stage 3: teachers, their labels, and the distilled students.

A teacher learns the mapped all-atom forces (loss: RMSE + MAE). Its labels -- forces,
per-bead energies and system energy on every frame -- supervise students; the ensemble labels
are the mean over all teachers. Students share the teacher's architecture, prior and every
hyperparameter and differ only by the loss (kdcg.variants).

Each model trains in its own folder: hippynn's experiment files and plots, a checkpoint after
every epoch (``last_checkpoint.pt``; a rerun continues from it), ``model.pt`` (the best
model) and ``metrics.json`` (held-out test split, loss per epoch).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from .errors import InputError, TrainingDiverged
from .files import read_json, read_npz, read_torch, write_torch
from .mapping import load_dataset
from .metrics import offset_free_energy_agreement, regression
from .model import (DB_BEAD_ENERGIES_T, DB_CELLS, DB_ENERGY_T, DB_FORCES_AA, DB_FORCES_T, DB_POSITIONS,
                    DB_SPECIES, CGModel, build_model)
from .splits import apply_to_database, split_frames
from .provenance import check_same_dataset, comparable, dataset_fingerprint, weights_sha256, without_path
from .pairs import cache_training_pairs
from .prior import read_prior
from .variants import Variant, get_variant

log = logging.getLogger(__name__)


# ----- labels ------------------------------------------------------------------------------

def load_labels(path: Path, data: dict) -> dict:
    """Teacher (or ensemble) labels, checked against the dataset they must belong to (its
    content fingerprint: the same frames in the same order)."""
    path = Path(path)
    labels = read_npz(path, "labels")
    if not {"forces", "bead_energies", "energy", "fingerprint"} <= set(labels):
        raise InputError(path, "not a kdcg labels file (forces, bead_energies, energy, fingerprint)")
    try:
        have = json.loads(str(labels["fingerprint"]))
    except json.JSONDecodeError:
        raise InputError(path, "not a kdcg labels file: its fingerprint is not JSON") from None
    check_same_dataset(have, data, path, "labels")
    n_frames, n_beads = data["R"].shape[:2]
    expected = {"forces": (n_frames, n_beads, 3), "bead_energies": (n_frames, n_beads), "energy": (n_frames,)}
    for key, shape in expected.items():
        if labels[key].shape != shape:
            raise InputError(path, f"labels '{key}' have shape {labels[key].shape}, expected {shape}")
    for key in ("forces", "bead_energies", "energy"):
        if not np.isfinite(labels[key]).all():
            raise InputError(path, f"labels '{key}' contain NaN or infinite values")
    return labels


def save_labels(path: Path, data: dict, forces, bead_energies, energy, **extra) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, forces=np.asarray(forces, dtype=np.float32), bead_energies=np.asarray(bead_energies, dtype=np.float32),
             energy=np.asarray(energy, dtype=np.float64), fingerprint=json.dumps(dataset_fingerprint(data)),
             units=json.dumps({"forces": "kcal/mol/angstrom", "energy": "kcal/mol"}), **extra)
    os.replace(tmp, path)


def ensemble_labels(label_paths: list[Path], dataset_path: Path, out: Path) -> dict:
    """Mean of the teachers' labels; the per-frame spread of their forces is kept too."""
    data = load_dataset(dataset_path)
    members = [load_labels(p, data) for p in label_paths]
    if not members:
        raise InputError(None, "the ensemble needs at least one teacher's labels")
    forces = np.stack([m["forces"].astype(np.float64) for m in members])
    bead = np.stack([m["bead_energies"].astype(np.float64) for m in members])
    energy = np.stack([m["energy"].astype(np.float64) for m in members])
    save_labels(out, data, forces.mean(0), bead.mean(0), energy.mean(0),
                forces_std=forces.std(0).astype(np.float32), members=np.array([str(p) for p in label_paths]))
    summary = {"members": len(members), "mean_force_std_kcal_mol_A": float(forces.std(0).mean())}
    log.info("ensemble labels: %s", json.dumps(summary))
    return summary


# ----- losses ------------------------------------------------------------------------------

def rmse_plus_mae(pred, true):
    from hippynn.graphs.nodes import loss

    return loss.MSELoss(pred, true) ** 0.5 + loss.MAELoss(pred, true)


def teacher_force_view(m: CGModel):
    """The force prediction once more, as its own node whose target is the teacher's forces
    (hippynn pairs each predicted node with one database target). Created once per model."""
    if m.teacher_forces_view is None:
        view = m.forces * 1.0
        view.name = "forces_vs_teacher"
        view.db_name = DB_FORCES_T
        m.teacher_forces_view = view
    return m.teacher_forces_view


def student_loss(m: CGModel, variant: Variant, n_beads: int):
    """The loss a variant trains with: {term: (weight, node)} and their weighted sum.

    Teachers are the variant with only the mapped AA forces."""
    terms = {}
    w = variant.weights
    if w["aa_forces"]:
        terms["aa_forces"] = (w["aa_forces"], rmse_plus_mae(m.forces.pred, m.forces.true))
    if w["teacher_forces"]:
        view = teacher_force_view(m)
        terms["teacher_forces"] = (w["teacher_forces"], rmse_plus_mae(view.pred, view.true))
    if w["bead_energy"]:
        terms["bead_energy"] = (w["bead_energy"], rmse_plus_mae(m.bead_energies.pred, m.bead_energies.true))
    if w["energy"]:
        # normalised by the number of beads so it does not dominate the other terms
        terms["energy"] = (w["energy"], rmse_plus_mae(m.energy.pred, m.energy.true) * (1.0 / n_beads))
    total = None
    for weight, node in terms.values():
        total = weight * node if total is None else total + weight * node
    return total, terms


def validation_losses(m: CGModel, total, student: bool) -> dict:
    from hippynn.graphs.nodes import loss

    out = {"TotalLoss": total,
           "ForceRMSE": loss.MSELoss.of_node(m.forces) ** 0.5,
           "ForceMAE": loss.MAELoss.of_node(m.forces),
           "ForceRsq": loss.Rsq.of_node(m.forces)}
    if student:
        out["TeacherForceRsq"] = loss.Rsq.of_node(teacher_force_view(m))
        out["BeadEnergyRMSE"] = loss.MSELoss.of_node(m.bead_energies) ** 0.5
        out["BeadEnergyRsq"] = loss.Rsq.of_node(m.bead_energies)
        out["EnergyRMSE"] = loss.MSELoss.of_node(m.energy) ** 0.5
        out["EnergyRsq"] = loss.Rsq.of_node(m.energy)
    return out


# ----- training ----------------------------------------------------------------------------

def database_arrays(data: dict, labels: dict | None) -> dict:
    arrays = {DB_SPECIES: data["Z"].astype(np.int64), DB_POSITIONS: data["R"].astype(np.float32),
              DB_CELLS: data["cell"].astype(np.float32), DB_FORCES_AA: data["F"].astype(np.float32)}
    if labels is not None:
        arrays[DB_FORCES_T] = labels["forces"].astype(np.float32)
        arrays[DB_BEAD_ENERGIES_T] = labels["bead_energies"].astype(np.float32).reshape(*data["Z"].shape, 1)
        arrays[DB_ENERGY_T] = labels["energy"].astype(np.float32).reshape(-1, 1)
    return arrays


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# the training graph's form: a checkpoint holds the graph, so one of another form is not resumed
TRAINING_GRAPH = "pairs cached in the database"
TRAIN_SECONDS_FILE = "train_seconds.txt"  # wall seconds of the epochs up to last_checkpoint.pt, all jobs


class EpochCheckpoint:
    """After every epoch: stop on a non-finite loss, else save ``last_checkpoint.pt`` and the
    wall seconds spent up to it (earlier jobs of a resumed training included)."""

    def __init__(self, folder: Path, model, controller, metric_tracker, started: float, earlier_s: float = 0.0):
        self.folder, self.model, self.controller, self.tracker = folder, model, controller, metric_tracker
        self.started, self.earlier_s = started, earlier_s
        self.last_good = None
        self.epochs_here = 0  # epochs run by this process (a resumed job starts later)

    def __call__(self, epoch, better_model):
        from hippynn.experiment import serialization

        latest = {split: vals.get("TotalLoss") for split, vals in self.tracker.epoch_metric_values[-1].items()} \
            if self.tracker.epoch_metric_values else {}
        bad = [s for s, v in latest.items() if v is None or not math.isfinite(float(v))]
        params_ok = all(torch.isfinite(p).all() for p in self.model.parameters())
        if bad or not params_ok:
            where = f"{self.last_good}" if self.last_good else "none (diverged in the first epoch)"
            raise TrainingDiverged(f"{self.folder}: loss is NaN or infinite at epoch {epoch}"
                                   f" ({', '.join(bad) or 'parameters'}); last good checkpoint: {where}")
        if better_model:
            # hippynn stores the new best model only after the epoch callbacks; the checkpoint
            # must hold it already, or a job resumed after this epoch reverts to an older best
            self.tracker.best_model = copy.deepcopy(self.model.state_dict())
        state = serialization.create_state(self.model, self.controller, self.tracker)
        write_torch(state, self.folder / "last_checkpoint.pt")
        (self.folder / TRAIN_SECONDS_FILE).write_text(f"{self.earlier_s + time.time() - self.started:.1f}\n")
        self.last_good = f"{self.folder / 'last_checkpoint.pt'} (epoch {epoch})"
        # epochs left: up to max_epochs, fewer if early stopping comes first (its bound moves)
        done, bound = epoch + 1, int(self.controller.max_epochs)
        self.epochs_here += 1
        elapsed = time.time() - self.started
        per_epoch = elapsed / self.epochs_here
        print(f"[kdcg] epoch {epoch} done ({done} of at most {bound}): train {latest.get('train'):.4f} "
              f"valid {latest.get('valid'):.4f} lr {self.controller.optimizer.param_groups[0]['lr']:.2e}; "
              f"elapsed {_duration(elapsed)}, at most {_duration(per_epoch * max(0, bound - done))} left", flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def _nan_batch_guard(folder: Path):
    def guard(batch_inputs, batch_outputs, batch_targets):
        for out in batch_outputs:
            if isinstance(out, torch.Tensor) and not torch.isfinite(out).all():
                raise TrainingDiverged(f"{folder}: model outputs became NaN or infinite during an epoch;"
                                       f" last good checkpoint: {folder / 'last_checkpoint.pt'}")
    return guard


def train(variant_name: str, seed: int, dataset_path: Path, prior_path: Path, out_dir: Path, cfg: dict,
          labels_path: Path | None = None, threads: int | None = None) -> dict:
    """Train one model (teacher or student) in out_dir; resume from its last checkpoint."""
    import hippynn
    from hippynn.experiment import SetupParams
    from hippynn.experiment.assembly import assemble_for_training
    from .early_stopping import MarginPatienceController
    from hippynn.experiment.routines import setup_training, train_model
    from hippynn.experiment.serialization import load_checkpoint
    from hippynn.databases import Database
    from hippynn.plotting import Hist2D, PlotMaker

    hippynn.settings.PROGRESS = None  # per-batch progress bars do not belong in a log file
    variant = get_variant(variant_name)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    device = compute_device()
    data = load_dataset(dataset_path)
    if variant.is_student and labels_path is None:
        raise InputError(None, f"student variant {variant.name} needs teacher labels")
    labels = load_labels(labels_path, data) if variant.is_student else None
    tcfg, mcfg = cfg["training"], cfg["model"]
    n_frames, n_beads = data["R"].shape[:2]
    prior = read_prior(prior_path, data)

    torch.manual_seed(seed)
    np.random.seed(seed)
    m = build_model(mcfg, len(data["species_names"]), prior)
    total, terms = student_loss(m, variant, n_beads)
    plots = PlotMaker(Hist2D.compare(m.forces, saved="forces", shown=False), plot_every=max(25, tcfg["max_epochs"] // 4))
    validation = validation_losses(m, total, variant.is_student)
    training_modules, db_info = assemble_for_training(total, validation, plot_maker=plots)
    database = Database(database_arrays(data, labels), seed=tcfg["split_seed"], quiet=True, pin_memory=False, **db_info)
    splits = split_frames(n_frames, tcfg)
    apply_to_database(database, splits)
    cache_training_pairs(training_modules.model, database, device, mcfg["dist_hard_max_A"])
    training_modules, db_info = assemble_for_training(total, validation, plot_maker=plots)
    database.inputs = db_info["inputs"]

    # where files live is not an input: a moved checkout resumes
    fingerprint = _fingerprint(TRAINING_GRAPH, variant.name, seed, cfg["model"], without_path(prior), tcfg, comparable(dataset_fingerprint(data)),
                               None if labels is None else hashlib.sha256(labels["forces"].tobytes()).hexdigest())
    stamp = out_dir / "inputs.sha256"
    resumable = (stamp.is_file() and stamp.read_text() == fingerprint and (out_dir / "last_checkpoint.pt").is_file()
                 and (out_dir / "experiment_structure.pt").is_file())
    started = time.time()
    # a killed job's epochs after its last checkpoint are run again, so they are not counted
    earlier_s = float((out_dir / TRAIN_SECONDS_FILE).read_text()) \
        if resumable and (out_dir / TRAIN_SECONDS_FILE).is_file() else 0.0
    print(f"[kdcg] {variant.name} seed {seed} on {device}: {n_frames} frames x {n_beads} beads, loss terms "
          + ", ".join(f"{w:g} x (RMSE+MAE)[{k}]" for k, (w, _) in terms.items()), flush=True)
    with contextlib.chdir(out_dir):
        if resumable:
            # hippynn maps the checkpoint onto model_device (it refuses map_location with it)
            check = load_checkpoint("experiment_structure.pt", "last_checkpoint.pt", restart_db=False,
                                    model_device=device, weights_only=False)
            training_modules, controller, tracker = check["training_modules"], check["controller"], check["metric_tracker"]
            print(f"[kdcg] resuming from last_checkpoint.pt at epoch {tracker.current_epoch}", flush=True)
        else:
            for stale in ("last_checkpoint.pt", "best_checkpoint.pt", "experiment_structure.pt", TRAIN_SECONDS_FILE):
                Path(stale).unlink(missing_ok=True)
            optimizer = torch.optim.Adam(training_modules.model.parameters(), lr=tcfg["learning_rate"])
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=tcfg["plateau_factor"],
                                                                   patience=tcfg["plateau_patience"])
            controller = MarginPatienceController(optimizer=optimizer, scheduler=scheduler, batch_size=tcfg["batch_size"],
                                                  eval_batch_size=tcfg["eval_batch_size"], max_epochs=tcfg["max_epochs"],
                                                  termination_patience=tcfg["termination_patience"],
                                                  min_improvement=tcfg["min_improvement"],
                                                  fraction_train_eval=0.25, stopping_key="TotalLoss")
            training_modules, controller, tracker = setup_training(training_modules, SetupParams(controller=controller, device=device))
            stamp.write_text(fingerprint)
        epoch_cb = EpochCheckpoint(out_dir, training_modules.model, controller, tracker, started, earlier_s)
        # controller.max_epochs includes early stopping (PatienceController)
        if controller.current_epoch < controller.max_epochs:
            train_model(training_modules, database, controller, tracker, callbacks=[epoch_cb],
                        batch_callbacks=[_nan_batch_guard(out_dir)], store_structure_file=not resumable)
        else:
            print("[kdcg] training already finished", flush=True)

    training_modules.model.to("cpu")  # saved models load anywhere; held-out metrics on the CPU
    if tracker.best_model is not None:
        training_modules.model.load_state_dict(tracker.best_model)
    best = inference_graph(training_modules.model, mcfg, len(data["species_names"]), prior)
    metrics = held_out_metrics(best, database, variant)
    history = [{"epoch": i, **{split: float(v["TotalLoss"]) for split, v in em.items()}}
               for i, em in enumerate(tracker.epoch_metric_values)]
    metrics.update({"variant": variant.name, "seed": seed, "epochs": int(controller.current_epoch), "loss_history": history,
                    "weights_sha256": weights_sha256(best), "dataset": dataset_fingerprint(data),
                    "best_epoch": int(getattr(controller, "best_weights_epoch", getattr(controller, "last_best", -1))),
                    "train_seconds": round(earlier_s + time.time() - started, 1), "resumed": resumable,
                    "split_mode": tcfg["split_mode"], "test_frames": splits["test"].tolist(),
                    "valid_frames": splits["valid"].tolist(),
                    "n_train": int(len(database.splits["train"][DB_SPECIES])),
                    "n_test": int(len(database.splits["test"][DB_SPECIES]))})
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    save_model(best, prior, mcfg, out_dir / "model.pt", dataset=dataset_fingerprint(data))
    print(f"[kdcg] done: {json.dumps(metrics)}", flush=True)
    return metrics


OUTPUTS = ("forces", "bead_energies", "energy")


def inference_graph(train_graph, model_cfg: dict, n_species: int, prior: dict):
    """The model to save: inputs species, positions, cells; outputs forces, bead energies,
    energy; its own pair search (the training graph reads cached pairs from the database) and
    the trained weights (the training graph, restored from a checkpoint too, holds every
    weighted module: they all feed the energy)."""
    from hippynn.graphs import GraphModule

    m = build_model(model_cfg, n_species, prior)
    graph = GraphModule([m.species, m.positions, m.cells], [m.forces, m.bead_energies, m.energy])
    # a graph module names its modules by position; nodes keep the names build_model gives them
    def all_nodes(g):
        return set(g.nodes_to_compute).union(*(n.get_all_parents() for n in g.nodes_to_compute))

    def modules(g):  # input nodes have no module
        return {n.name: n.torch_module for n in all_nodes(g) if isinstance(getattr(n, "torch_module", None), torch.nn.Module)}

    trained = modules(train_graph)
    for name, module in modules(graph).items():
        if module.state_dict():
            if name not in trained:
                raise RuntimeError(f"the trained graph has no node {name!r}")
            module.load_state_dict(trained[name].state_dict())
    return graph


def held_out_metrics(model, database, variant: Variant) -> dict:
    """Force MAE, RMSE, R^2 on the held-out test split (energies against teacher labels too)."""
    split = database.splits["test"]
    pred = predict_arrays(model, split[DB_SPECIES], split[DB_POSITIONS], split[DB_CELLS])
    out = {"test_forces_vs_aa": regression(pred["forces"], split[DB_FORCES_AA].numpy())}
    if variant.is_student:
        out["test_forces_vs_teacher"] = regression(pred["forces"], split[DB_FORCES_T].numpy())
        out["test_bead_energies_vs_teacher"] = regression(pred["bead_energies"], split[DB_BEAD_ENERGIES_T].numpy()[..., 0])
        out["test_energy_vs_teacher"] = regression(pred["energy"], split[DB_ENERGY_T].numpy()[:, 0])
        # the paper's Fig. S3: teachers' energies carry an arbitrary constant per species
        out["test_energies_vs_teacher_offset_free"] = offset_free_energy_agreement(
            pred["bead_energies"], split[DB_BEAD_ENERGIES_T].numpy()[..., 0], pred["energy"],
            split[DB_ENERGY_T].numpy()[:, 0], np.asarray(split[DB_SPECIES][0]))
    return out


def predict_arrays(graph, species, positions, cells, batch_size: int = 8) -> dict:
    """Forces (frames, beads, 3), bead energies (frames, beads) and energy (frames,) of a
    trained graph module, evaluated in batches of frames."""
    from hippynn.graphs import Predictor

    pred = Predictor.from_graph(graph, model_device=compute_device(), return_device=torch.device("cpu"))
    species, positions, cells = (torch.as_tensor(np.asarray(x)) for x in (species, positions, cells))
    outs = {k: [] for k in OUTPUTS}
    for i in range(0, len(species), batch_size):
        res = pred(species=species[i:i + batch_size], positions=positions[i:i + batch_size].float(),
                   cells=cells[i:i + batch_size].float())
        outs["forces"].append(res["forces"].detach().numpy())
        outs["bead_energies"].append(res["bead_energies"].detach().numpy()[..., 0])
        outs["energy"].append(res["energy"].detach().numpy()[:, 0])
    return {k: np.concatenate(v) for k, v in outs.items()}


MODEL_RECORD_KEYS = {"graph", "prior", "model_cfg", "outputs"}


def save_model(model, prior: dict, model_cfg: dict, path: Path, dataset: dict | None = None, **extra) -> None:
    """The trained graph module (inputs species, positions, cells; outputs forces,
    bead_energies, energy, then any others) with its prior, hyperparameters, the fingerprint
    of the dataset it was trained on and the hash of its weights."""
    outputs = [n.name for n in model.nodes_to_compute]
    write_torch({"graph": model, "prior": prior, "model_cfg": model_cfg, "outputs": outputs, "dataset": dataset,
                 "weights_sha256": weights_sha256(model), **extra}, path)


def compute_device():
    """CUDA when the job was given a GPU (the Slurm GPU override), else the CPU.
    KDCG_DEVICE=cpu|cuda forces one."""
    import os

    wanted = os.environ.get("KDCG_DEVICE", "auto")
    if wanted not in ("auto", "cpu", "cuda"):
        raise InputError(None, f"KDCG_DEVICE must be auto, cpu or cuda, not {wanted!r}")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "KDCG_DEVICE=cuda but torch sees no CUDA device")
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(wanted)


def load_model(path: Path, data: dict | None = None):
    """(graph module, record) of a saved model; with ``data``, the model must have been
    trained on that dataset."""
    path = Path(path)
    record = read_torch(path, "model")
    if not isinstance(record, dict) or not MODEL_RECORD_KEYS <= set(record):
        raise InputError(path, "not a kdcg model file (kdcg train or kdcg ensemble write them)")
    if data is not None:
        check_same_dataset(record.get("dataset"), data, path, "model")
    return record["graph"], record


def label_frames(model_path: Path, dataset_path: Path, out: Path, batch_size: int = 8, threads: int | None = None) -> dict:
    """A teacher's forces, per-bead energies and system energy on every frame of the dataset.

    On 2 CPU threads the forces differed between runs in their last bit (float32), which the
    students trained on them amplify; the workflow labels on one thread (deterministic)."""
    if threads:
        torch.set_num_threads(threads)
    data = load_dataset(dataset_path)
    graph, record = load_model(model_path, data)
    arrays = predict_arrays(graph, data["Z"], data["R"], data["cell"], batch_size)
    for k, v in arrays.items():
        if not np.isfinite(v).all():
            raise InputError(model_path, f"model predicts non-finite {k} on {dataset_path}")
    save_labels(out, data, **arrays)
    summary = {"frames": int(len(data["Z"])), "mean_abs_force_kcal_mol_A": float(np.abs(arrays["forces"]).mean()),
               "mean_energy_kcal_mol": float(arrays["energy"].mean())}
    log.info("labels %s: %s", out, json.dumps(summary))
    return summary

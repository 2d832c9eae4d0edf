"""Stage 3: training a teacher or a distilled student.

A teacher learns the mapped all-atom forces (loss: RMSE + MAE). Its labels (kdcg.training.labels) --
forces, per-bead energies and system energy on every frame -- supervise students; the
ensemble labels are the mean over all teachers. Students share the teacher's architecture,
prior and every hyperparameter and differ only by the loss (kdcg.variants, kdcg.training.losses).

Each model trains in its own folder: hippynn's experiment files (and, with
training.hippynn_plots, its plots), a checkpoint after every epoch (``last_checkpoint.pt``; a
rerun continues from it), ``model.pt`` (the best model) and ``metrics.json`` (held-out test
split, loss per epoch).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from kdcg.config import NOT_WEIGHT_KEYS
from kdcg.errors import InputError, TrainingDiverged
from kdcg.files import write_torch
from kdcg.training.kernel_graph import kernel_engine, training_engine
from kdcg.training.labels import load_labels
from kdcg.training.losses import student_loss, validation_losses
from kdcg.cg.mapping import load_dataset
from kdcg.training.metrics import offset_free_energy_agreement, regression
from kdcg.models.model import (DB_BEAD_ENERGIES_T, DB_CELLS, DB_ENERGY_T, DB_FORCES_AA, DB_FORCES_T, DB_POSITIONS,
                    DB_SPECIES, CGModel, build_model)
from kdcg.training.splits import apply_to_database, split_frames
from kdcg.provenance import comparable, dataset_fingerprint, weights_sha256, without_path
from kdcg.models.model_io import compute_device, inference_graph, predict_arrays, save_model
from kdcg.models.pairs import cache_training_pairs
from kdcg.models.prior import read_prior
from kdcg.variants import Variant, get_variant

log = logging.getLogger(__name__)


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
# wall seconds of the epochs up to last_checkpoint.pt, all jobs, in ms: a resumed epoch adds at least 1 ms
TRAIN_SECONDS_FILE = "train_seconds.txt"


class EpochCheckpoint:
    """After every epoch: stop on a non-finite loss, else save ``last_checkpoint.pt`` and the
    wall seconds spent up to it (earlier jobs of a resumed training included)."""

    def __init__(self, folder: Path, model, controller, metric_tracker, started: float, earlier_s: float = 0.0):
        self.folder, self.model, self.controller, self.tracker = folder, model, controller, metric_tracker
        self.started, self.earlier_s = started, earlier_s
        self.total_s = earlier_s  # as written with the last checkpoint: what metrics.json reports
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
        self.total_s = round(self.earlier_s + time.time() - self.started, 3)
        (self.folder / TRAIN_SECONDS_FILE).write_text(f"{self.total_s:.3f}\n")
        self.last_good = f"{self.folder / 'last_checkpoint.pt'} (epoch {epoch})"
        # epochs left: up to max_epochs, fewer if early stopping comes first (its bound moves)
        done, bound = epoch + 1, int(self.controller.max_epochs)
        self.epochs_here += 1
        elapsed = time.time() - self.started
        per_epoch = elapsed / self.epochs_here
        print(f"[kdcg] epoch {epoch} done ({done} of at most {bound}): train {latest.get('train'):.4f} "
              f"valid {latest.get('valid'):.4f} lr {self.controller.optimizer.param_groups[0]['lr']:.2e}; "
              f"elapsed {_duration(elapsed)}, at most {_duration(per_epoch * max(0, bound - done))} left", flush=True)


def weights_config(tcfg: dict) -> dict:
    """The training section without NOT_WEIGHT_KEYS: adding a teacher or a variant, or cutting
    the jobs otherwise, resumes the finished trainings instead of starting them over."""
    return {k: v for k, v in tcfg.items() if k not in NOT_WEIGHT_KEYS}


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


def force_parity_plots(model: CGModel, max_epochs: int):
    """hippynn's predicted-vs-target force histograms (PNG) of every split, at epoch 0, every
    quarter of max_epochs (at least 25 epochs apart) and of the final model."""
    from hippynn.plotting import Hist2D, PlotMaker

    return PlotMaker(Hist2D.compare(model.forces, saved="forces", shown=False), plot_every=max(25, max_epochs // 4))


def run_epochs(training_modules, database, controller, tracker, callbacks, batch_callbacks,
               store_structure_file: bool, plots_over_time: bool, engine: str = "hippynn") -> None:
    """hippynn's training loop, then the best weights back in the model and the final test of
    every split (printed, kept in the tracker), as hippynn's ``train_model`` does; the plot of
    every metric over the epochs (PDFs, most of the plots' 2.2 s a default teacher on a laptop
    core, benchmarks/training_jobs.py: the report's loss figure is drawn from metrics.json either
    way) only with ``plots_over_time``. A KeyboardInterrupt ends the job, not the training (hippynn's
    ``train_model`` went on to test and save the model): the next run resumes. ``engine``
    (``training_engine``): kernels runs the epochs and the final test through
    kdcg.training.kernel_graph, after the structure file holds hippynn's own graph."""
    import pickle
    from hippynn.experiment import serialization
    from hippynn.experiment.routines import test_model, training_loop
    from hippynn.tools import param_print

    model, _, evaluator = training_modules
    print("Model:")
    model.print_structure()
    param_print(model)
    database.inputs, database.targets = evaluator.db_info["inputs"], evaluator.db_info["targets"]
    if store_structure_file:
        serialization.create_structure_file(training_modules, database, controller)
    with kernel_engine(model) if engine == "kernels" else contextlib.nullcontext():
        training_loop(training_modules=training_modules, database=database, controller=controller,
                      metric_tracker=tracker, callbacks=callbacks, batch_callbacks=batch_callbacks,
                      store_best=True, store_all_better=False, store_every=0, quiet=False)
        torch.save(tracker, "training_metrics.pt")
        if tracker.best_model:
            model.load_state_dict(tracker.best_model)
        if plots_over_time:
            tracker.plot_over_time()
        test_model(database, evaluator, when="FinalTraining", batch_size=controller.eval_batch_size,
                   metric_tracker=tracker)
    with open("training_metrics.pkl", "wb") as f:
        pickle.dump(tracker, f)


def train(variant_name: str, seed: int, dataset_path: Path, prior_path: Path, out_dir: Path, cfg: dict,
          labels_path: Path | None = None, threads: int | None = None) -> dict:
    """Train one model (teacher or student) in out_dir; resume from its last checkpoint."""
    import hippynn
    from hippynn.experiment import SetupParams
    from hippynn.experiment.assembly import assemble_for_training
    from kdcg.training.early_stopping import MarginPatienceController
    from hippynn.experiment.routines import setup_training
    from hippynn.experiment.serialization import load_checkpoint
    from hippynn.databases import Database

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
    plots = force_parity_plots(m, tcfg["max_epochs"]) if tcfg["hippynn_plots"] else None
    validation = validation_losses(m, total, variant.is_student)
    training_modules, db_info = assemble_for_training(total, validation, plot_maker=plots)
    database = Database(database_arrays(data, labels), seed=tcfg["split_seed"], quiet=True, pin_memory=False, **db_info)
    splits = split_frames(n_frames, tcfg)
    if int(len(splits["train"]) * tcfg["train_eval_fraction"]) < 1:
        raise InputError(None, f"training.train_eval_fraction {tcfg['train_eval_fraction']:g} of {len(splits['train'])}"
                               f" training frames evaluates no frame; it needs at least {1 / len(splits['train']):.3g}")
    apply_to_database(database, splits)
    cache_training_pairs(training_modules.model, database, device, mcfg["dist_hard_max_A"])
    training_modules, db_info = assemble_for_training(total, validation, plot_maker=plots)
    database.inputs = db_info["inputs"]

    # where files live is not an input: a moved checkout resumes
    fingerprint = _fingerprint(TRAINING_GRAPH, variant.name, seed, cfg["model"], without_path(prior), weights_config(tcfg),
                               comparable(dataset_fingerprint(data)),
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
            # this run's diagnostics (NOT_WEIGHT_KEYS), not the first job's
            training_modules.evaluator.plot_maker = plots
            controller.fraction_train_eval = tcfg["train_eval_fraction"]
            print(f"[kdcg] resuming from last_checkpoint.pt at epoch {tracker.current_epoch}", flush=True)
        else:
            for stale in ("last_checkpoint.pt", "best_checkpoint.pt", "experiment_structure.pt", TRAIN_SECONDS_FILE):
                Path(stale).unlink(missing_ok=True)
            # foreach: the same updates to the bit as the CPU's default loop, in fewer operations
            optimizer = torch.optim.Adam(training_modules.model.parameters(), lr=tcfg["learning_rate"], foreach=True)
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=tcfg["plateau_factor"],
                                                                   patience=tcfg["plateau_patience"])
            controller = MarginPatienceController(optimizer=optimizer, scheduler=scheduler, batch_size=tcfg["batch_size"],
                                                  eval_batch_size=tcfg["eval_batch_size"], max_epochs=tcfg["max_epochs"],
                                                  termination_patience=tcfg["termination_patience"],
                                                  min_improvement=tcfg["min_improvement"],
                                                  fraction_train_eval=tcfg["train_eval_fraction"],
                                                  stopping_key="TotalLoss")
            training_modules, controller, tracker = setup_training(training_modules, SetupParams(controller=controller, device=device))
            stamp.write_text(fingerprint)
        engine = training_engine(tcfg["engine"], training_modules.model, device)
        print(f"[kdcg] training engine: {engine} (training.engine: {tcfg['engine']})", flush=True)
        epoch_cb = EpochCheckpoint(out_dir, training_modules.model, controller, tracker, started, earlier_s)
        # controller.max_epochs includes early stopping (PatienceController)
        if controller.current_epoch < controller.max_epochs:
            run_epochs(training_modules, database, controller, tracker, callbacks=[epoch_cb],
                       batch_callbacks=[_nan_batch_guard(out_dir)], store_structure_file=not resumable,
                       plots_over_time=tcfg["hippynn_plots"], engine=engine)
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
                    # the epochs' seconds up to the last checkpoint, all jobs: a job that finds the
                    # training finished adds nothing, set-up and the held-out test are not counted
                    "train_seconds": epoch_cb.total_s, "resumed": resumable, "engine": engine,
                    "split_mode": tcfg["split_mode"], "test_frames": splits["test"].tolist(),
                    "valid_frames": splits["valid"].tolist(),
                    "n_train": int(len(database.splits["train"][DB_SPECIES])),
                    "n_test": int(len(database.splits["test"][DB_SPECIES]))})
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    save_model(best, prior, mcfg, out_dir / "model.pt", dataset=dataset_fingerprint(data))
    print(f"[kdcg] done: {json.dumps(metrics)}", flush=True)
    return metrics


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



"""Teachers, labels, students: exact loss terms per variant, F = -dE/dx, the ensemble mean,
determinism per seed, learning, resume and bad input."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from conftest import SMALL_TRAINING_CONFIG, freeze_when, kdcg, venv_env, write_pair_dataset
from kdcg.training import labels
from kdcg.training import losses
from kdcg.models import model_io
from kdcg import provenance
from kdcg.training import train as training
from kdcg import variants
from kdcg.errors import InputError, TrainingDiverged
from kdcg.cg.mapping import load_dataset
from kdcg.models.prior import read_prior, write_prior
from kdcg.models.model import DB_CELLS, DB_POSITIONS, DB_SPECIES, build_model

# Table 2/3 of the paper as DESIGN.md states it: (w_E, w_e, w_T, w_AA)
PAPER_WEIGHTS = {
    "teacher": (0, 0, 0, 1),
    "st_ei_faa": (0, 5, 0, 1), "st_ei_ft": (0, 5, 1, 0), "st_ei_ft_faa": (0, 5, 1, 2),
    "se_ft_faa": (0, 0, 1, 2), "se_ei_faa": (0, 5, 0, 1), "se_ei_ft": (0, 5, 1, 0), "se_ei_ft_faa": (0, 5, 1, 2),
    "se_e_ft_faa": (5, 0, 1, 2), "se_e_ei_ft_faa": (5, 5, 1, 2),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("training")
    write_pair_dataset(d / "dataset.npz")
    write_prior(d / "dataset.npz", SMALL_TRAINING_CONFIG, d / "prior.json")
    return d


@pytest.fixture(scope="module")
def teacher(workdir):
    training.train("teacher", 1, workdir / "dataset.npz", workdir / "prior.json", workdir / "teacher-1", SMALL_TRAINING_CONFIG)
    return workdir / "teacher-1"


def test_the_table_is_the_paper():
    assert set(PAPER_WEIGHTS) == {"teacher", *variants.STUDENTS}
    for name, (we, wei, wt, waa) in PAPER_WEIGHTS.items():
        v = variants.get_variant(name)
        assert (v.w_energy, v.w_bead_energy, v.w_teacher_forces, v.w_aa_forces) == (we, wei, wt, waa)
        assert v.teacher == (None if name == "teacher" else "single" if name.startswith("st_") else "ensemble")
    assert len(variants.model_names(list(range(1, 9)))) == 8 + 24 + 6


def _rmse_mae(p, t):
    return np.sqrt(((p - t) ** 2).mean()) + np.abs(p - t).mean()


@pytest.mark.parametrize("name", list(PAPER_WEIGHTS))
def test_training_loss_has_exactly_the_variant_terms(name, workdir):
    """Evaluate the loss module training uses on a batch and compare with the paper's formula."""
    from hippynn.experiment.assembly import assemble_for_training

    data = load_dataset(workdir / "dataset.npz")
    prior = read_prior(workdir / "prior.json", data)
    rng = np.random.default_rng(1)
    n, N = data["R"].shape[:2]
    label_arrays = {"forces": rng.normal(size=(n, N, 3)), "bead_energies": rng.normal(size=(n, N)), "energy": rng.normal(size=n) * 10}
    torch.manual_seed(0)
    m = build_model(SMALL_TRAINING_CONFIG["model"], 3, prior)
    variant = variants.get_variant(name)
    total, terms = losses.student_loss(m, variant, N)
    assert {k: w for k, (w, _) in terms.items()} == {k: w for k, w in zip(("energy", "bead_energy", "teacher_forces", "aa_forces"),
                                                                            PAPER_WEIGHTS[name]) if w}
    tm, db_info = assemble_for_training(total, {"TotalLoss": total})
    arrays = training.database_arrays(data, label_arrays)
    batch = {k: torch.as_tensor(v[:3]) for k, v in arrays.items()}
    outputs = tm.model(*[batch[k] for k in db_info["inputs"]])
    value = tm.loss(*outputs, *[batch[k] for k in db_info["targets"]])[0].item()

    graph = model_io.inference_graph(tm.model, SMALL_TRAINING_CONFIG["model"], 3, prior)
    pred = model_io.predict_arrays(graph, arrays[DB_SPECIES][:3], arrays[DB_POSITIONS][:3], arrays[DB_CELLS][:3])
    we, wei, wt, waa = PAPER_WEIGHTS[name]
    expect = (we * _rmse_mae(pred["energy"], label_arrays["energy"][:3]) / N
              + wei * _rmse_mae(pred["bead_energies"], label_arrays["bead_energies"][:3])
              + wt * _rmse_mae(pred["forces"], label_arrays["forces"][:3])
              + waa * _rmse_mae(pred["forces"], data["F"][:3]))
    assert value == pytest.approx(expect, rel=2e-5)


def _data_prior_and_labels(workdir):
    """The module's dataset and prior, and random teacher labels of its frames."""
    data = load_dataset(workdir / "dataset.npz")
    prior = read_prior(workdir / "prior.json", data)
    n, N = data["R"].shape[:2]
    rng = np.random.default_rng(2)
    return data, prior, {"forces": rng.normal(size=(n, N, 3)), "bead_energies": rng.normal(size=(n, N)),
                         "energy": rng.normal(size=n)}


@pytest.mark.parametrize("name", ["teacher", "se_ei_ft_faa"])
def test_training_on_cached_pairs_gives_the_losses_and_gradients_of_the_pair_search(name, workdir):
    """The fast path (pairs found once per frame, kdcg.models.pairs.cache_training_pairs) against the
    plain one (a KD-tree search per batch), on the whole training split; and kdcg's padded pair
    table against hippynn's sparse cache, to the last bit, on the whole split and on the data
    loader's shuffled batches."""
    from hippynn.databases import Database
    from hippynn.experiment.assembly import assemble_for_training

    from kdcg.models.pairs import cache_training_pairs
    from kdcg.training.splits import apply_to_database, split_frames

    data, prior, label_arrays = _data_prior_and_labels(workdir)
    n, N = data["R"].shape[:2]
    variant = variants.get_variant(name)
    cutoff_A = SMALL_TRAINING_CONFIG["model"]["dist_hard_max_A"]

    def training_setup(cache):
        torch.manual_seed(0)
        m = build_model(SMALL_TRAINING_CONFIG["model"], 3, prior)
        total, _ = losses.student_loss(m, variant, N)
        tm, info = assemble_for_training(total, {"TotalLoss": total})
        database = Database(training.database_arrays(data, label_arrays if variant.is_student else None), seed=0,
                            quiet=True, pin_memory=False, **info)
        apply_to_database(database, split_frames(n, SMALL_TRAINING_CONFIG["training"]))
        if cache:
            cache_training_pairs(tm.model, database, torch.device("cpu"), cutoff_A, padded=cache == "padded")
            tm, info = assemble_for_training(total, {"TotalLoss": total})
            database.inputs = info["inputs"]
        return tm, info, database

    def loss_and_gradients(modules, info, arrays):
        modules.model.zero_grad()
        outputs = modules.model(*arrays[:len(info["inputs"])])
        loss = modules.loss(*outputs, *arrays[len(info["inputs"]):])[0]
        loss.backward()
        return loss.item(), {k: p.grad.clone() for k, p in modules.model.named_parameters() if p.grad is not None}

    def whole_split(info, database):
        return [database.splits["train"][k] for k in info["inputs"] + info["targets"]]

    plain, sparse, padded = training_setup(None), training_setup("sparse"), training_setup("padded")
    assert len(padded[1]["inputs"]) == len(plain[1]["inputs"]) + 1  # the cached pairs
    assert padded[2].splits["train"]["AutoPrecomputedPairs"].dtype == torch.int32  # the table, not hippynn's sparse tensor
    plain_loss, plain_grads = loss_and_gradients(plain[0], plain[1], whole_split(*plain[1:]))
    padded_loss, padded_grads = loss_and_gradients(padded[0], padded[1], whole_split(*padded[1:]))
    assert padded_loss == pytest.approx(plain_loss, rel=1e-6)
    assert padded_grads.keys() == plain_grads.keys() and len(plain_grads) > 0
    for k in plain_grads:
        torch.testing.assert_close(padded_grads[k], plain_grads[k], rtol=1e-4, atol=1e-6)
    sparse_loss, sparse_grads = loss_and_gradients(sparse[0], sparse[1], whole_split(*sparse[1:]))
    assert padded_loss == sparse_loss and all(torch.equal(padded_grads[k], sparse_grads[k]) for k in sparse_grads)
    torch.manual_seed(5)
    sparse_batches = list(sparse[2].make_generator("train", "train", 3))
    torch.manual_seed(5)
    padded_batches = list(padded[2].make_generator("train", "train", 3))
    assert len(padded_batches) == len(sparse_batches) > 1
    for a, b in zip(sparse_batches, padded_batches):
        la, ga = loss_and_gradients(sparse[0], sparse[1], a)
        lb, gb = loss_and_gradients(padded[0], padded[1], b)
        assert la == lb and all(torch.equal(ga[k], gb[k]) for k in ga)


def test_forces_are_minus_the_energy_gradient_prior_included(teacher, workdir):
    graph, record = model_io.load_model(teacher / "model.pt")
    graph = graph.double()
    data = load_dataset(workdir / "dataset.npz")
    R = data["R"][:1].astype(np.float64).copy()
    taper = np.array(record["prior"]["taper_A"])
    # put bead 1 inside the repulsive range of bead 0 (force ~ 2.7 x the prior strength), in the
    # direction that keeps it farthest from every other bead
    edge = data["cell"][0, 0, 0]
    dirs = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)], float)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    spots = R[0, 0] + (taper[0, 1] - 0.2) * dirs
    d = spots[:, None] - R[0, 2:][None]
    d -= edge * np.round(d / edge)
    R[0, 1] = spots[np.argmax(np.linalg.norm(d, axis=-1).min(1))]
    Z, cell = data["Z"][:1], data["cell"][:1].astype(np.float64)

    def run(x):
        from hippynn.graphs import Predictor
        out = Predictor.from_graph(graph)(species=torch.as_tensor(Z), positions=torch.as_tensor(x), cells=torch.as_tensor(cell))
        return out["energy"].detach().numpy().ravel()[0], out["forces"].detach().numpy()[0]

    E0, F = run(R)
    assert np.abs(F[:2]).max() > 1.0  # the prior pushes the close pair apart
    h = 1e-4
    for bead, axis in [(0, 0), (1, 0), (1, 1), (5, 2)]:
        Rp, Rm = R.copy(), R.copy()
        Rp[0, bead, axis] += h
        Rm[0, bead, axis] -= h
        fd = -(run(Rp)[0] - run(Rm)[0]) / (2 * h)
        assert fd == pytest.approx(F[bead, axis], rel=1e-5, abs=1e-6)


def test_per_bead_energies_sum_to_the_system_energy(teacher, workdir):
    graph, _ = model_io.load_model(teacher / "model.pt")
    data = load_dataset(workdir / "dataset.npz")
    out = model_io.predict_arrays(graph, data["Z"], data["R"], data["cell"])
    np.testing.assert_allclose(out["bead_energies"].sum(1), out["energy"], rtol=1e-5, atol=1e-4)


def test_labels_and_their_ensemble_mean(teacher, workdir, tmp_path):
    labels.label_frames(teacher / "model.pt", workdir / "dataset.npz", tmp_path / "t1.npz")
    data = load_dataset(workdir / "dataset.npz")
    t1 = labels.load_labels(tmp_path / "t1.npz", data)
    rng = np.random.default_rng(5)
    other = {k: t1[k] + rng.normal(size=t1[k].shape) for k in ("forces", "bead_energies", "energy")}
    labels.save_labels(tmp_path / "t2.npz", data, **other)
    labels.ensemble_labels([tmp_path / "t1.npz", tmp_path / "t2.npz"], workdir / "dataset.npz", tmp_path / "ens.npz")
    ens = labels.load_labels(tmp_path / "ens.npz", data)
    for k in ("forces", "bead_energies", "energy"):
        np.testing.assert_allclose(ens[k], (t1[k].astype(np.float64) + other[k].astype(np.float32)) / 2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ens["forces_std"], np.abs(t1["forces"] - other["forces"].astype(np.float32)) / 2, rtol=1e-4, atol=1e-5)


def test_same_seed_same_weights_other_seed_other_weights(workdir, tmp_path):
    """... and neither hippynn's plots nor the part of the training split evaluated each epoch
    (training.hippynn_plots, training.train_eval_fraction) changes a weight."""
    def weights(seed, name, **diagnostics):
        cfg = copy.deepcopy(SMALL_TRAINING_CONFIG)
        cfg["training"].update(diagnostics)
        metrics = training.train("teacher", seed, workdir / "dataset.npz", workdir / "prior.json", tmp_path / name, cfg)
        state = model_io.load_model(tmp_path / name / "model.pt")[0].state_dict()
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}, metrics["loss_history"]
    (a, hist_a), (b, hist_b), (c, _) = (weights(3, "a"), weights(3, "b", hippynn_plots=True, train_eval_fraction=1.0),
                                        weights(4, "c"))
    assert [h["valid"] for h in hist_a] == [h["valid"] for h in hist_b]
    assert [h["train"] for h in hist_a] != [h["train"] for h in hist_b]  # other training frames evaluated
    assert (tmp_path / "b" / "plots" / "over_time" / "TotalLoss.pdf").is_file() and not (tmp_path / "a" / "plots").exists()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_a_short_training_lowers_the_loss(workdir, tmp_path):
    cfg = copy.deepcopy(SMALL_TRAINING_CONFIG)
    cfg["training"].update(max_epochs=12, hippynn_plots=True)
    metrics = training.train("teacher", 1, workdir / "dataset.npz", workdir / "prior.json", tmp_path / "t", cfg)
    hist = metrics["loss_history"]
    assert len(hist) == 12
    assert hist[-1]["train"] < 0.8 * hist[0]["train"]
    assert min(h["valid"] for h in hist) < hist[0]["valid"]
    assert set(metrics["test_forces_vs_aa"]) == {"mae", "rmse", "r2"}
    assert (tmp_path / "t" / "last_checkpoint.pt").is_file()
    for plot in ("over_time/TotalLoss.pdf", "over_time/ForceRMSE.pdf", "epochs/epoch0/valid/forces.png",
                 "FinalTraining/test/forces.png"):
        assert (tmp_path / "t" / "plots" / plot).is_file(), plot


def test_student_metrics_include_energies(teacher, workdir, tmp_path):
    labels.label_frames(teacher / "model.pt", workdir / "dataset.npz", tmp_path / "labels.npz")
    m = training.train("st_ei_ft_faa", 1, workdir / "dataset.npz", workdir / "prior.json", tmp_path / "s", SMALL_TRAINING_CONFIG,
                       labels_path=tmp_path / "labels.npz")
    for key in ("test_forces_vs_aa", "test_forces_vs_teacher", "test_bead_energies_vs_teacher", "test_energy_vs_teacher"):
        assert np.isfinite(m[key]["rmse"])


def test_labels_of_another_dataset_are_refused(teacher, workdir, tmp_path):
    labels.label_frames(teacher / "model.pt", workdir / "dataset.npz", tmp_path / "labels.npz")
    write_pair_dataset(tmp_path / "fewer_frames.npz", n_frames=10)
    with pytest.raises(InputError, match=r"labels.npz: labels made from a different dataset than .*fewer_frames.npz: "
                                         r"frame count 12 vs 10"):
        labels.load_labels(tmp_path / "labels.npz", load_dataset(tmp_path / "fewer_frames.npz"))
    write_pair_dataset(tmp_path / "more_beads.npz", n_side=4)
    with pytest.raises(InputError, match="bead count 27 vs 64"):
        labels.load_labels(tmp_path / "labels.npz", load_dataset(tmp_path / "more_beads.npz"))


def test_labels_of_the_same_frames_in_another_order_are_refused_naming_both_files(teacher, workdir, tmp_path):
    """Same counts and species, frames reversed: only the content fingerprint tells them apart."""
    labels.label_frames(teacher / "model.pt", workdir / "dataset.npz", tmp_path / "labels.npz")
    with np.load(workdir / "dataset.npz") as z:
        arrays = {k: z[k] for k in z.files}
    for k in ("R", "F", "Z", "cell", "time_ps"):
        arrays[k] = arrays[k][::-1].copy()
    np.savez(tmp_path / "reversed.npz", **arrays)
    with pytest.raises(InputError, match=r"labels.npz: labels made from .*dataset.npz \(content sha256 \w+\), "
                                         r"not from .*reversed.npz"):
        labels.load_labels(tmp_path / "labels.npz", load_dataset(tmp_path / "reversed.npz"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(SMALL_TRAINING_CONFIG))
    # a student refuses them; the prior and the teacher's model are fingerprinted too
    proc = kdcg("train", "st_ei_ft", "--seed", "1", "--config", cfg, "--dataset", tmp_path / "reversed.npz",
                "--prior", workdir / "prior.json", "--labels", tmp_path / "labels.npz", "--out-dir", tmp_path / "s",
                check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and last.startswith(f"kdcg error: {tmp_path / 'labels.npz'}: labels made from")
    proc = kdcg("train", "teacher", "--seed", "1", "--config", cfg, "--dataset", tmp_path / "reversed.npz",
                "--prior", workdir / "prior.json", "--out-dir", tmp_path / "t", check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2
    assert last.startswith(f"kdcg error: {workdir / 'prior.json'}: prior made from") and "reversed.npz" in last
    proc = kdcg("label", "--model", teacher / "model.pt", "--dataset", tmp_path / "reversed.npz", "--out",
                tmp_path / "l2.npz", check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "model.pt: model made from" in last and "reversed.npz" in last
    assert not (tmp_path / "l2.npz").exists()


def test_models_trained_in_one_job_get_the_weights_they_get_alone(teacher, workdir, tmp_path):
    """`kdcg train` with several models (training.models_per_job): the second model of the job,
    trained after another in the same process, has the weights of its own job's."""
    labels.label_frames(teacher / "model.pt", workdir / "dataset.npz", tmp_path / "labels.npz")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(SMALL_TRAINING_CONFIG))
    common = ["--config", cfg, "--dataset", workdir / "dataset.npz", "--prior", workdir / "prior.json",
              "--labels", tmp_path / "labels.npz", "--threads", "1"]
    together = kdcg("train", "st_ei_ft", "st_ei_faa", "--seed", "11", "12", *common, "--out-dir", tmp_path / "a",
                    tmp_path / "b", "--mliap", tmp_path / "a.mliap.pt", tmp_path / "b.mliap.pt")
    assert together.stdout.index("[kdcg] model 1 of 2: st_ei_ft seed 11") < \
        together.stdout.index("[kdcg] model 2 of 2: st_ei_faa seed 12")
    alone = kdcg("train", "st_ei_faa", "--seed", "12", *common, "--out-dir", tmp_path / "b-alone")
    assert "model 1 of" not in alone.stdout
    second, second_alone = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("b", "b-alone"))
    first = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert (first["variant"], first["seed"], second["variant"], second["seed"]) == ("st_ei_ft", 11, "st_ei_faa", 12)
    assert second["weights_sha256"] == second_alone["weights_sha256"] != first["weights_sha256"]
    assert second["test_forces_vs_teacher"] == second_alone["test_forces_vs_teacher"]
    assert (tmp_path / "a.mliap.pt").stat().st_size > 0 and (tmp_path / "b.mliap.pt").stat().st_size > 0
    # the lists pair up one to one
    proc = kdcg("train", "teacher", "--seed", "1", "2", *common, "--out-dir", tmp_path / "c", check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == \
        "kdcg error: kdcg train: 1 --out-dir for 2 --seed; give one per model"
    assert not (tmp_path / "c").exists()


def test_keys_that_choose_models_or_jobs_resume_a_finished_training_and_others_restart_it(workdir, tmp_path):
    first = training.train("teacher", 3, workdir / "dataset.npz", workdir / "prior.json", tmp_path / "t", SMALL_TRAINING_CONFIG)
    assert first["resumed"] is False
    more = copy.deepcopy(SMALL_TRAINING_CONFIG)
    more["training"].update(teacher_seeds=[1, 2, 3], student_variants=list(variants.STUDENTS), models_per_job=4)
    again = training.train("teacher", 3, workdir / "dataset.npz", workdir / "prior.json", tmp_path / "t", more)
    assert again["resumed"] is True and again["weights_sha256"] == first["weights_sha256"]
    other = copy.deepcopy(more)
    other["training"]["learning_rate"] *= 2
    assert training.train("teacher", 3, workdir / "dataset.npz", workdir / "prior.json", tmp_path / "t", other)["resumed"] is False


def test_training_batches_hold_each_model_once_with_its_labels():
    from kdcg.variants import training_batches

    seeds, chosen = [1, 2, 3, 4], list(variants.STUDENTS)
    for k in (1, 2, 3, 5, 100):
        batches = training_batches(seeds, chosen, k)
        models = [m for b in batches for m in b.models]
        assert sorted(m[0] for m in models) == sorted(variants.model_names(seeds, chosen))  # each once
        assert len({b.name for b in batches}) == len(batches)
        for b in batches:
            assert 1 <= len(b.models) <= k
            for name, variant, seed in b.models:
                if variant == "teacher":
                    assert b.labels is None and name == f"teacher-{seed}"
                elif name.count("-") == 2:  # student-<st variant>-<teacher seed>
                    teacher_seed = int(name.rsplit("-", 1)[1])
                    assert b.labels == f"teacher-{teacher_seed}" and seed == variants.student_seed(variant, teacher_seed)
                else:
                    assert b.labels == "ensemble" and seed == variants.student_seed(variant)
    assert [b.name for b in training_batches(seeds, chosen, 3)] == \
        ["teachers-1", "teachers-2", *[f"students-of-teacher-{s}-1" for s in seeds], "ensemble-students-1",
         "ensemble-students-2"]
    assert [len(b.models) for b in training_batches(seeds, chosen, 3)] == [3, 1, 3, 3, 3, 3, 3, 3]
    # one model per job: each job is named as its model, and every name is a {batch} the rule takes
    import re

    from kdcg.naming import TRAINING_JOB_REGEX

    for k in (1, 3):
        for b in training_batches(seeds, chosen, k):
            assert re.fullmatch(TRAINING_JOB_REGEX, b.name), b.name
            assert (b.name == b.model_names[0]) == (k == 1)
            assert variants.training_batch(b.name, seeds, chosen, k) == b
            assert all(variants.batch_of_model(m, seeds, chosen, k) == b for m in b.model_names)
    # a model the config does not list is a job of its own, with its labels and its own seed
    lone = variants.training_batch("student-st_ei_ft-9", seeds, chosen, 3)
    assert lone.labels == "teacher-9" and lone.models == (("student-st_ei_ft-9", "st_ei_ft", variants.student_seed("st_ei_ft", 9)),)
    assert not re.fullmatch(TRAINING_JOB_REGEX, "ensemble")


def test_unknown_variant_lists_the_valid_ones(workdir, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(SMALL_TRAINING_CONFIG))
    proc = kdcg("train", "se_everything", "--seed", "1", "--config", cfg, "--dataset", workdir / "dataset.npz",
                "--prior", workdir / "prior.json", "--out-dir", tmp_path / "x", check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "unknown model variant 'se_everything'" in last and "se_e_ei_ft_faa" in last and "st_ei_faa" in last


def test_nan_loss_stops_naming_epoch_and_checkpoint(workdir, tmp_path):
    cfg = copy.deepcopy(SMALL_TRAINING_CONFIG)
    cfg["training"].update(learning_rate=1e12, max_epochs=5)
    with pytest.raises(TrainingDiverged, match=r"(at epoch \d+|during an epoch).*last good checkpoint"):
        training.train("teacher", 1, workdir / "dataset.npz", workdir / "prior.json", tmp_path / "nan", cfg)


def test_killed_training_resumes_from_its_last_checkpoint(workdir, tmp_path):
    cfg = copy.deepcopy(SMALL_TRAINING_CONFIG)
    cfg["training"]["max_epochs"] = 40
    cfg["training"]["termination_patience"] = 40
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    args = [sys.executable, "-m", "kdcg", "train", "teacher", "--seed", "1", "--config", str(tmp_path / "c.yaml"),
            "--dataset", str(workdir / "dataset.npz"), "--prior", str(workdir / "prior.json"), "--out-dir", str(tmp_path / "t")]
    log = tmp_path / "first.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=venv_env(), start_new_session=True)
        frozen = freeze_when(proc, lambda: "[kdcg] epoch 3 done" in log.read_text(), watchdog_s=900)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert frozen, f"training ended, or did not finish epoch 3 in 900 s: {log.read_text()[-1500:]}"
    assert not (tmp_path / "t" / "model.pt").exists()
    second = subprocess.run(args, capture_output=True, text=True, env=venv_env())
    assert second.returncode == 0, second.stderr[-2000:]
    resumed_at = int(next(l for l in second.stdout.splitlines() if "resuming from last_checkpoint.pt" in l).split()[-1])
    assert resumed_at >= 4
    assert "[kdcg] epoch 0 done" not in second.stdout
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert metrics["resumed"] is True and metrics["epochs"] == 40 and len(metrics["loss_history"]) == 40


class _Killed(Exception):
    pass


def _state(folder):
    state = model_io.load_model(folder / "model.pt")[0].state_dict()
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("killed_after, network", [(0, "HipnnQuad"), (1, "HipnnQuad"), (2, "HipnnQuad"), (1, "Hipnn")])
def test_a_job_killed_after_any_epoch_resumes_to_the_uninterrupted_model(workdir, tmp_path, monkeypatch, killed_after,
                                                                         network):
    """Killed right after epoch k's checkpoint (the last epoch included), the rerun gives the
    uninterrupted run's weights bit for bit; so does rerunning a finished training. Both networks
    train through the written-out forces (training.engine auto): HIP-NN-TS in PyTorch, the scalar
    network through the numba kernels."""
    cfg = copy.deepcopy(SMALL_TRAINING_CONFIG)
    cfg["model"]["network"] = network
    cfg["training"].update(max_epochs=3, termination_patience=10, plateau_patience=10, min_improvement=0.01)
    args = ("teacher", 2, workdir / "dataset.npz", workdir / "prior.json")
    straight = training.train(*args, tmp_path / "straight", cfg)
    original = training.EpochCheckpoint.__call__

    def killing(self, epoch, better_model):
        original(self, epoch, better_model)
        if epoch == killed_after:
            raise _Killed(epoch)

    monkeypatch.setattr(training.EpochCheckpoint, "__call__", killing)
    with pytest.raises(_Killed):
        training.train(*args, tmp_path / "killed", cfg)
    assert not (tmp_path / "killed" / "model.pt").exists()
    first_job_s = float((tmp_path / "killed" / training.TRAIN_SECONDS_FILE).read_text())
    assert first_job_s > 0
    monkeypatch.setattr(training.EpochCheckpoint, "__call__", original)
    torch.manual_seed(12345)  # whatever this process did since: the checkpoint restores its own RNG state
    resumed = training.train(*args, tmp_path / "killed", cfg)
    assert resumed["resumed"] is True
    assert resumed["engine"] == straight["engine"] == "kernels"
    if killed_after == 2:  # nothing left to train: the resumed job adds no second
        assert resumed["train_seconds"] == first_job_s
    else:  # both jobs' epochs counted (ms resolution; an epoch takes more)
        assert resumed["train_seconds"] > first_job_s
    a, b = _state(tmp_path / "straight"), _state(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["weights_sha256"] == straight["weights_sha256"]
    assert resumed["best_epoch"] == straight["best_epoch"] and resumed["test_forces_vs_aa"] == straight["test_forces_vs_aa"]
    assert [h["valid"] for h in resumed["loss_history"]] == [h["valid"] for h in straight["loss_history"]]
    if killed_after == 2:  # a finished training run again (Snakemake --forcerun) writes the same model
        again = training.train(*args, tmp_path / "straight", cfg)
        assert again["weights_sha256"] == straight["weights_sha256"]
        assert model_io.load_model(tmp_path / "straight" / "model.pt")[1]["weights_sha256"] == straight["weights_sha256"]


def test_weights_hash_names_identical_weights_across_files(workdir, tmp_path):
    cfg = copy.deepcopy(SMALL_TRAINING_CONFIG)
    cfg["training"]["max_epochs"] = 1
    a = training.train("teacher", 5, workdir / "dataset.npz", workdir / "prior.json", tmp_path / "a", cfg)
    b = training.train("teacher", 5, workdir / "dataset.npz", workdir / "prior.json", tmp_path / "b", cfg)
    c = training.train("teacher", 6, workdir / "dataset.npz", workdir / "prior.json", tmp_path / "c", cfg)
    assert a["weights_sha256"] == b["weights_sha256"] != c["weights_sha256"]
    assert len(a["weights_sha256"]) == 64
    graph, record = model_io.load_model(tmp_path / "a" / "model.pt")
    assert record["weights_sha256"] == a["weights_sha256"] == provenance.weights_sha256(graph)
    with torch.no_grad():
        next(p for p in graph.parameters() if p.is_floating_point()).view(-1)[0] += 1e-6
    assert provenance.weights_sha256(graph) != a["weights_sha256"]


def test_every_student_has_its_own_seed_not_its_teachers():
    seeds = {f"teacher-{s}": s for s in range(1, 9)}
    for v in variants.single_teacher_variants():
        for s in range(1, 9):
            seeds[f"student-{v}-{s}"] = variants.student_seed(v, s)
    for v in variants.ensemble_variants():
        seeds[f"student-{v}"] = variants.student_seed(v)
    assert len(seeds) == 8 + 24 + 6 == len(set(seeds.values()))
    assert variants.student_seed("st_ei_ft", 2) == 1340026844 and variants.student_seed("se_ei_ft") == 470237577
    with pytest.raises(InputError, match="an ensemble student none"):
        variants.student_seed("se_ei_ft", 1)
    with pytest.raises(InputError, match="not a student variant"):
        variants.student_seed("teacher", 1)


def test_block_splits_keep_neighbouring_frames_together():
    from kdcg.training.splits import split_frames

    tcfg = {"split_seed": 3, "split_mode": "blocks", "split_blocks": 10, "valid_fraction": 0.1, "test_fraction": 0.2}
    s = split_frames(100, tcfg)
    assert sorted(np.concatenate([s["train"], s["valid"], s["test"]]).tolist()) == list(range(100))
    assert (len(s["test"]), len(s["valid"]), len(s["train"])) == (20, 10, 70)
    for name in ("test", "valid"):  # whole blocks of 10 consecutive frames
        blocks = set((s[name] // 10).tolist())
        assert sorted(s[name].tolist()) == [i for b in sorted(blocks) for i in range(10 * b, 10 * b + 10)]
    assert split_frames(100, tcfg)["test"].tolist() == s["test"].tolist()  # one seed, one split
    r = split_frames(100, {**tcfg, "split_mode": "random"})
    assert len(r["test"]) == 20 and len(set((r["test"] // 10).tolist())) > 2  # scattered single frames


def test_student_variants_choose_the_trained_models_in_table_order():
    names = variants.model_names([1, 2], ["se_e_ft_faa", "st_ei_ft_faa", "se_ft_faa"])
    assert names == ["teacher-1", "teacher-2", "student-st_ei_ft_faa-1", "student-st_ei_ft_faa-2",
                     "student-se_ft_faa", "student-se_e_ft_faa"]
    assert variants.model_names([1]) == variants.model_names([1], list(variants.STUDENTS))
    with pytest.raises(InputError, match="se_nothing"):
        variants.model_names([1], ["se_nothing"])


def test_labels_on_one_thread_are_the_same_bit_for_bit_on_every_run(teacher, workdir, tmp_path):
    """The workflow labels on one thread: on two, a default run's forces differed between runs in
    their last bit, and every student trained on them differed."""
    from conftest import kdcg

    forces = []
    for k in range(3):
        kdcg("label", "--model", str(teacher / "model.pt"), "--dataset", str(workdir / "dataset.npz"),
             "--out", str(tmp_path / f"labels-{k}.npz"), "--threads", "1")
        forces.append(np.load(tmp_path / f"labels-{k}.npz")["forces"])
    assert np.abs(forces[0]).max() > 0
    assert all(np.array_equal(forces[0], f) for f in forces[1:])


def _stopping_epochs(losses, min_improvement, patience=3, state_after=None):
    """Epochs a MarginPatienceController lets run on this validation-loss sequence (a copy of
    the controller is restored from its state_dict after epoch ``state_after``)."""
    from kdcg.training.early_stopping import MarginPatienceController

    def controller():
        opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        return MarginPatienceController(optimizer=opt, scheduler=None, batch_size=1, max_epochs=100,
                                        termination_patience=patience, min_improvement=min_improvement,
                                        stopping_key="TotalLoss", quiet=True)

    c, best = controller(), float("inf")
    for epoch, loss in enumerate(losses):
        better, best = loss < best, min(best, loss)  # hippynn's MetricTracker: any strict improvement
        if not c.push_epoch(epoch, better, loss):
            return epoch + 1, c.best_weights_epoch
        if epoch == state_after:
            restored = controller()
            restored.load_state_dict(c.state_dict())
            c = restored
    return len(losses), c.best_weights_epoch


def test_early_stopping_counts_only_improvements_beyond_the_margin():
    # 10 % better, then 0.02 % better per epoch for ever
    valid_losses = [10.0, 9.0] + [9.0 * (1 - 2e-4) ** k for k in range(1, 60)]
    # any improvement: never bored, runs to the cap of the sequence; the best weights are the last
    assert _stopping_epochs(valid_losses, 0.0) == (61, 60)
    # a 0.1 % margin: epoch 1 (9.0) restored the patience last; 3 more epochs, then stop; the
    # kept weights are still those of the last strict improvement
    assert _stopping_epochs(valid_losses, 1e-3) == (5, 4)
    # 0.02 % per epoch passes a 0.1 % margin every sixth epoch (1 - (1 - 2e-4)^6 > 1e-3 > 1 - (1 - 2e-4)^5)
    assert _stopping_epochs(valid_losses, 1e-3, patience=6) == (61, 60)
    assert _stopping_epochs(valid_losses, 1e-3, patience=5) == (7, 6)
    # the margin's reference survives a checkpoint
    assert _stopping_epochs(valid_losses, 1e-3, state_after=2) == (5, 4)
    with pytest.raises(ValueError):
        _stopping_epochs(valid_losses, 1.0)


def test_a_train_eval_fraction_that_evaluates_no_frame_is_refused(workdir, tmp_path):
    cfg = copy.deepcopy(SMALL_TRAINING_CONFIG)
    cfg["training"]["train_eval_fraction"] = 0.01
    with pytest.raises(InputError, match=r"train_eval_fraction 0\.01 of \d+ training frames evaluates no frame"):
        training.train("teacher", 1, workdir / "dataset.npz", workdir / "prior.json", tmp_path / "t", cfg)
    assert not (tmp_path / "t" / "last_checkpoint.pt").exists()


def _scalar_config(**training_keys) -> dict:
    cfg = copy.deepcopy(SMALL_TRAINING_CONFIG)
    cfg["model"]["network"] = "Hipnn"
    cfg["training"].update(training_keys)
    return cfg


@pytest.mark.parametrize("name,network", [("teacher", "Hipnn"), ("se_ei_ft_faa", "Hipnn"), ("teacher", "HipnnQuad"),
                                          ("se_ei_ft_faa", "HipnnQuad")])
def test_the_kernel_engine_gives_the_training_graphs_outputs_loss_and_gradients(name, network, workdir):
    """training.engine kernels (kdcg.training.kernel_graph) against hippynn's training graph on
    one batch of the training split: every output the loss and the metrics read, the loss, and
    its gradient with respect to every parameter, within float32 rounding; hippynn's graph is
    itself again afterwards."""
    from hippynn.databases import Database
    from hippynn.experiment.assembly import assemble_for_training
    from hippynn.graphs import GraphModule

    from kdcg.models.pairs import cache_training_pairs
    from kdcg.training.kernel_graph import kernel_engine
    from kdcg.training.splits import apply_to_database, split_frames

    cfg = _scalar_config()
    cfg["model"]["network"] = network
    data, prior, label_arrays = _data_prior_and_labels(workdir)
    n, N = data["R"].shape[:2]
    variant = variants.get_variant(name)
    torch.manual_seed(0)
    m = build_model(cfg["model"], 3, prior)
    total, _ = losses.student_loss(m, variant, N)
    validation = losses.validation_losses(m, total, variant.is_student)
    tm, info = assemble_for_training(total, validation)
    database = Database(training.database_arrays(data, label_arrays if variant.is_student else None), seed=0,
                        quiet=True, pin_memory=False, **info)
    apply_to_database(database, split_frames(n, cfg["training"]))
    cache_training_pairs(tm.model, database, torch.device("cpu"), cfg["model"]["dist_hard_max_A"])
    tm, info = assemble_for_training(total, validation)
    batch = [database.splits["train"][k][:3] for k in info["inputs"] + info["targets"]]
    n_inputs = len(info["inputs"])

    def step():
        tm.model.zero_grad()
        outputs = tm.model(*batch[:n_inputs])
        loss = tm.loss(*outputs, *batch[n_inputs:])[0]
        loss.backward()
        return ([o.detach().clone() for o in outputs], loss.item(),
                {k: p.grad.clone() for k, p in tm.model.named_parameters() if p.grad is not None})

    want_out, want_loss, want_grads = step()
    with kernel_engine(tm.model):
        got_out, got_loss, got_grads = step()
    assert type(tm.model) is GraphModule and not hasattr(tm.model, "_kdcg")
    assert len(got_out) == len(want_out) == (4 if variant.is_student else 1)  # a teacher's loss reads its forces only
    for got, want in zip(got_out, want_out):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()) + 1e-6)
    assert got_loss == pytest.approx(want_loss, rel=1e-5)
    assert got_grads.keys() == want_grads.keys() and len(want_grads) >= 10
    for k in want_grads:
        torch.testing.assert_close(got_grads[k], want_grads[k], rtol=1e-4, atol=1e-5 * float(want_grads[k].abs().max()) + 1e-8)


def test_auto_trains_the_scalar_network_through_the_kernels_and_refuses_them_where_they_do_not_apply(workdir, tmp_path):
    """auto picks the kernels on a CPU for the scalar network and HipnnQuad, hippynn for HipnnVec
    and for two interaction layers; kernels asked for two interaction layers is one clear error. Three epochs
    through each engine from one seed give the same loss history within float32 drift, and the
    same seed twice the same weights."""
    def run(name, network="Hipnn", interaction_layers=1, **keys):
        cfg = _scalar_config(max_epochs=3, **keys)
        cfg["model"]["network"] = network
        cfg["model"]["n_interaction_layers"] = interaction_layers
        return training.train("teacher", 1, workdir / "dataset.npz", workdir / "prior.json", tmp_path / name, cfg)

    auto, again, reference = run("auto"), run("again", engine="kernels"), run("hippynn", engine="hippynn")
    assert (auto["engine"], again["engine"], reference["engine"]) == ("kernels", "kernels", "hippynn")
    assert auto["loss_history"] == again["loss_history"] and auto["weights_sha256"] == again["weights_sha256"]
    for a, b in zip(auto["loss_history"], reference["loss_history"]):
        assert a["valid"] == pytest.approx(b["valid"], rel=1e-3)
    assert auto["test_forces_vs_aa"]["rmse"] == pytest.approx(reference["test_forces_vs_aa"]["rmse"], rel=1e-3)
    quad, quad_reference = run("quad", network="HipnnQuad"), run("quad-hippynn", network="HipnnQuad", engine="hippynn")
    assert (quad["engine"], quad_reference["engine"]) == ("kernels", "hippynn")
    for a, b in zip(quad["loss_history"], quad_reference["loss_history"]):
        assert a["valid"] == pytest.approx(b["valid"], rel=1e-3)
    assert run("vec", network="HipnnVec")["engine"] == "hippynn"  # measured level: AUTO_KERNEL_ORDERS
    assert run("two-layers", network="HipnnQuad", interaction_layers=2)["engine"] == "hippynn"
    with pytest.raises(InputError, match="training.engine: kernels"):
        run("two-layers-kernels", network="HipnnQuad", interaction_layers=2, engine="kernels")

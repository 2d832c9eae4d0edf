"""The GPU route: training, labels and batched CG MD on CUDA give the CPU's numbers.

Skipped where PyTorch sees no CUDA device (this project's CI). On a GPU machine:
``KDCG_TORCH_INDEX=https://download.pytorch.org/whl/cu128 bash scripts/setup.sh`` then
``pytest -m gpu``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SMALL_TRAINING_CONFIG, write_md_dataset
from kdcg.models import ensemble
from kdcg.training import labels
from kdcg.md import replicas as md
from kdcg.models import model_forces
from kdcg.training import train as training
from kdcg.cg.mapping import load_dataset
from kdcg.models.prior import write_prior

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]

MD_CONFIG = {
    "replicas": 2, "seed": 7, "timestep_fs": 2.0, "thermostat_damping_fs": 100.0, "equilibration_ps": 0.04,
    "sample_interval_ps": 0.02, "n_samples": 3, "thermo_interval_steps": 10, "restart_interval_steps": 20,
    "pair_skin_A": 0.5, "min_distance_A": 0.5, "max_temperature_K": 5000.0, "replicas_per_job": 2,
    "evaluate_replicas_together": True, "engine": "auto", "max_energy_per_bead_kcal_mol": 1000.0,
    "max_energy_drift_per_bead_kcal_mol": 50.0,
}


@pytest.fixture(scope="module")
def trained_on_gpu(tmp_path_factory):
    """A teacher pair, their labels, the ensemble and one ensemble student, all trained on CUDA."""
    d = tmp_path_factory.mktemp("gpu")
    write_md_dataset(d)
    write_prior(d / "dataset.npz", SMALL_TRAINING_CONFIG, d / "prior.json")
    mp = pytest.MonkeyPatch()
    mp.setenv("KDCG_DEVICE", "cuda")
    try:
        for seed in (1, 2):
            training.train("teacher", seed, d / "dataset.npz", d / "prior.json", d / f"teacher-{seed}",
                           SMALL_TRAINING_CONFIG)
            labels.label_frames(d / f"teacher-{seed}" / "model.pt", d / "dataset.npz", d / f"labels-{seed}.npz")
        labels.ensemble_labels([d / "labels-1.npz", d / "labels-2.npz"], d / "dataset.npz", d / "ensemble.npz")
        training.train("se_ei_ft_faa", 3, d / "dataset.npz", d / "prior.json", d / "student", SMALL_TRAINING_CONFIG,
                       labels_path=d / "ensemble.npz")
        ensemble.build_ensemble([d / "teacher-1" / "model.pt", d / "teacher-2" / "model.pt"], d / "ensemble" / "model.pt")
    finally:
        mp.undo()
    return d


@pytest.mark.parametrize("name", ["teacher-1/model.pt", "student/model.pt", "ensemble/model.pt"])
def test_cuda_forces_equal_the_cpu_forces(trained_on_gpu, name, monkeypatch):
    data = load_dataset(trained_on_gpu / "dataset.npz")
    frames = data["R"][:3]
    monkeypatch.setenv("KDCG_DEVICE", "cuda")
    gpu = model_forces.ModelForces(trained_on_gpu / name)
    assert gpu.device.type == "cuda"
    monkeypatch.setenv("KDCG_DEVICE", "cpu")
    cpu = model_forces.ModelForces(trained_on_gpu / name)
    for a, b in zip(gpu.evaluate_batch(data["Z"][0], frames, data["cell"][0]),
                    cpu.evaluate_batch(data["Z"][0], frames, data["cell"][0])):
        np.testing.assert_allclose(a.forces_kcal_mol_A, b.forces_kcal_mol_A, atol=1e-3, rtol=1e-4)
        assert a.energy_kcal_mol == pytest.approx(b.energy_kcal_mol, rel=1e-4, abs=1e-3)


@pytest.mark.parametrize("name", ["ensemble", "student"])
def test_batched_md_runs_on_cuda(trained_on_gpu, name, tmp_path, monkeypatch):
    import yaml

    from conftest import REPO

    monkeypatch.setenv("KDCG_DEVICE", "cuda")
    cfg = {"system": yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())["system"], "md": MD_CONFIG}
    results = md.run_replicas(trained_on_gpu / name / "model.pt", trained_on_gpu / "dataset.npz", cfg, [1, 2], tmp_path)
    sched = md.Schedule.from_config(MD_CONFIG)
    assert [r["status"] for r in results] == ["stable", "stable"]
    assert all(r["step"] == sched.total_steps and r["ns_per_day"] > 0 for r in results)


def test_labels_made_on_cuda_equal_the_cpu_labels(trained_on_gpu, tmp_path, monkeypatch):
    """The teacher labels of the fixture were predicted on CUDA (KDCG_DEVICE=cuda)."""
    monkeypatch.setenv("KDCG_DEVICE", "cpu")
    labels.label_frames(trained_on_gpu / "teacher-1" / "model.pt", trained_on_gpu / "dataset.npz", tmp_path / "cpu.npz")
    gpu, cpu = np.load(trained_on_gpu / "labels-1.npz"), np.load(tmp_path / "cpu.npz")
    assert set(gpu.files) == set(cpu.files)
    for key in gpu.files:
        if np.issubdtype(gpu[key].dtype, np.floating):
            np.testing.assert_allclose(gpu[key], cpu[key], atol=1e-3, rtol=1e-4, err_msg=key)
        else:
            np.testing.assert_array_equal(gpu[key], cpu[key], err_msg=key)

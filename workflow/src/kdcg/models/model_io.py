"""Saved kdcg models: the inference graph (its own pair search, the trained weights), the model
file with its prior, hyperparameters, dataset fingerprint and weights hash, evaluation in
batches of frames, and the compute device (CUDA when the job has a GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kdcg.errors import InputError
from kdcg.files import read_torch, write_torch
from kdcg.models.model import OUTPUT_NAMES, build_model
from kdcg.provenance import check_same_dataset, weights_sha256
from kdcg.models.sensitivity import use_inverse_sensitivity


MODEL_RECORD_KEYS = {"graph", "prior", "model_cfg", "outputs"}


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


def predict_arrays(graph, species, positions, cells, batch_size: int = 8) -> dict:
    """Forces (frames, beads, 3), bead energies (frames, beads) and energy (frames,) of a
    trained graph module, evaluated in batches of frames."""
    from hippynn.graphs import Predictor

    pred = Predictor.from_graph(graph, model_device=compute_device(), return_device=torch.device("cpu"))
    species, positions, cells = (torch.as_tensor(np.asarray(x)) for x in (species, positions, cells))
    outs = {k: [] for k in OUTPUT_NAMES}
    for i in range(0, len(species), batch_size):
        res = pred(species=species[i:i + batch_size], positions=positions[i:i + batch_size].float(),
                   cells=cells[i:i + batch_size].float())
        outs["forces"].append(res["forces"].detach().numpy())
        outs["bead_energies"].append(res["bead_energies"].detach().numpy()[..., 0])
        outs["energy"].append(res["energy"].detach().numpy()[:, 0])
    return {k: np.concatenate(v) for k, v in outs.items()}


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
    use_inverse_sensitivity(record["graph"])  # models saved before kdcg.models.sensitivity (same state)
    return record["graph"], record

"""The ensemble of teachers as one model file: the members evaluated on one shared pair list as
one batched computation (kdcg.models.stacked_members), the mean force applied and the members' forces
kept for their spread (kdcg.models.model.ensemble_graph)."""

from __future__ import annotations

import logging
from pathlib import Path

from kdcg.errors import InputError
from kdcg.provenance import same_dataset, without_path

log = logging.getLogger(__name__)


def build_ensemble(member_paths: list[Path], out: Path) -> dict:
    """Save the ensemble of teachers as one model file (kdcg.models.model.ensemble_graph)."""
    from kdcg.models.model import ensemble_graph
    from kdcg.models.model_io import load_model, save_model

    members, records = [], []
    for path in member_paths:
        graph, record = load_model(path)
        members.append(graph)
        records.append(record)
    for path, record in zip(member_paths[1:], records[1:]):
        if (without_path(record["prior"]) != without_path(records[0]["prior"])
                or record["model_cfg"] != records[0]["model_cfg"]):
            raise InputError(path, f"prior or hyperparameters differ from {member_paths[0]}; an ensemble needs both shared")
        if not same_dataset(record.get("dataset"), records[0].get("dataset")):
            raise InputError(path, f"trained on a different dataset than {member_paths[0]}; an ensemble needs one dataset")
    graph = ensemble_graph(members, records[0]["prior"], records[0]["model_cfg"])
    save_model(graph, records[0]["prior"], records[0]["model_cfg"], out, dataset=records[0].get("dataset"),
               members=[str(p) for p in member_paths], member_weights_sha256=[r.get("weights_sha256") for r in records])
    log.info("ensemble of %d teachers saved to %s", len(members), out)
    return {"members": [str(p) for p in member_paths]}

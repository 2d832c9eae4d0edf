"""What a result was made from: the content fingerprint of a dataset, which labels, priors,
models and references carry and which every reader compares, and a hash of a model's weights
that identical trainings share (saved .pt files differ byte for byte: torch writes a fresh
serialization id and pickles sets in hash order)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from kdcg.errors import InputError

log = logging.getLogger(__name__)

# what must agree between a dataset and anything computed from it
COMPARED = ("content_sha256", "n_frames", "n_beads", "species_names")


def dataset_fingerprint(data: dict) -> dict:
    """Frame and bead counts, species, and a SHA-256 of the positions, forces, species and
    boxes (frame order included). ``path`` records where it came from, for messages only."""
    cached = data.get("_fingerprint")
    if cached is not None:
        return dict(cached)
    h = hashlib.sha256()
    for key in ("R", "F", "Z", "cell"):
        arr = np.ascontiguousarray(data[key])
        h.update(f"{key}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(arr.tobytes())
    out = {"n_frames": int(data["R"].shape[0]), "n_beads": int(data["R"].shape[1]),
           "species_names": [str(s) for s in data["species_names"]], "content_sha256": h.hexdigest(),
           "path": data.get("_path")}
    data["_fingerprint"] = out
    return dict(out)


def check_same_dataset(have: dict | None, data: dict, path: Path | str, what: str) -> None:
    """Refuse ``path`` (a ``what`` made from the dataset fingerprinted ``have``) when it does
    not belong to the dataset ``data``; the message names both files."""
    check_fingerprint(have, dataset_fingerprint(data), path, what)


def check_fingerprint(have: dict | None, want: dict | None, path: Path | str, what: str) -> None:
    """Refuse ``path`` when the dataset fingerprint it carries (``have``) is not ``want``."""
    want = want or {}
    dataset = want.get("path") or "the dataset"
    if not have or "content_sha256" not in have:
        raise InputError(path, f"{what} carries no dataset fingerprint (made by an older kdcg?): "
                               f"it cannot be checked against {dataset}; recompute it")
    for key, label in (("n_frames", "frame count"), ("n_beads", "bead count"), ("species_names", "species")):
        if have.get(key) != want.get(key):
            raise InputError(path, f"{what} made from a different dataset than {dataset}: "
                                   f"{label} {have.get(key)} vs {want.get(key)}")
    if have["content_sha256"] != want.get("content_sha256"):
        source = have.get("path") or "another dataset"
        raise InputError(path, f"{what} made from {source} (content sha256 {have['content_sha256'][:12]}), "
                               f"not from {dataset} (content sha256 {str(want.get('content_sha256'))[:12]}): positions, "
                               "forces or frame order differ")


def comparable(fingerprint: dict | None) -> dict:
    """The part of a dataset fingerprint that identifies the data (not where it lay)."""
    return {k: (fingerprint or {}).get(k) for k in COMPARED}


def same_dataset(a: dict | None, b: dict | None) -> bool:
    return bool(a) and bool(b) and comparable(a) == comparable(b)


def without_path(record: dict) -> dict:
    """A record (prior, model) with its dataset fingerprint reduced to what identifies the data."""
    out = dict(record)
    if isinstance(out.get("dataset"), dict):
        out["dataset"] = comparable(out["dataset"])
    return out


def weights_sha256(module) -> str:
    """SHA-256 over every tensor of a module's state dict, in key order: equal weights give
    equal hashes whatever the file bytes."""
    import torch

    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

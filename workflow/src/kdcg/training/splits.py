"""Train / validation / test splits of a dataset's frames.

Frames of an MD run 1 ps apart are strongly correlated: a random split puts each test frame
next to training frames that are nearly the same, and the test metrics come out optimistic.
``training.split_mode: blocks`` cuts the frames into ``training.split_blocks`` contiguous
blocks and deals whole blocks to the test, validation and training splits (seeded by
``training.split_seed``); ``random`` deals single frames. Every model of a run shares the split,
and MD replicas start from frames of its training split, as in the paper.
"""

from __future__ import annotations

import numpy as np

from kdcg.errors import InputError

SPLITS = ("train", "valid", "test")


def split_frames(n_frames: int, tcfg: dict) -> dict[str, np.ndarray]:
    """{split: sorted frame indices}; test and valid get at least one frame (or block) each."""
    rng = np.random.default_rng(tcfg["split_seed"])
    mode = tcfg["split_mode"]
    if mode == "random":
        units = [np.array([i]) for i in range(n_frames)]
    elif mode == "blocks":
        n_blocks = min(tcfg["split_blocks"], n_frames)
        units = [b for b in np.array_split(np.arange(n_frames), n_blocks) if len(b)]
    else:
        raise InputError(None, f"config key 'training.split_mode' must be blocks or random, not {mode!r}")
    if len(units) < 3:
        raise InputError(None, f"{n_frames} frames in {len(units)} blocks cannot make train, valid and test splits")
    want = {"test": max(1, round(tcfg["test_fraction"] * n_frames)),
            "valid": max(1, round(tcfg["valid_fraction"] * n_frames))}
    order = list(rng.permutation(len(units)))
    out = {}
    for split in ("test", "valid"):
        taken = []
        while order and sum(len(units[u]) for u in taken) < want[split] and len(order) > 1:
            taken.append(order.pop(0))
        out[split] = np.sort(np.concatenate([units[u] for u in taken]))
    out["train"] = np.sort(np.concatenate([units[u] for u in order]))
    if not all(len(v) for v in out.values()):
        raise InputError(None, f"the split of {n_frames} frames left an empty split: {[k for k, v in out.items() if not len(v)]}")
    return out


def apply_to_database(database, splits: dict[str, np.ndarray]) -> None:
    """Give a hippynn Database (made without sizes) exactly these splits."""
    import torch

    database.make_explicit_split("test", torch.as_tensor(splits["test"], dtype=torch.int64))
    database.make_explicit_split("valid", torch.as_tensor(splits["valid"], dtype=torch.int64))
    database.split_the_rest("train")

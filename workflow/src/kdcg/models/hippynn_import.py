"""hippynn, imported without the ~4 s of torch.compile machinery it does not need here.

On import, hippynn wraps one of its custom-kernel implementations (``pytorch``) in
``torch.compile``, which imports TorchDynamo and Inductor: about half of the import time of
every kdcg job (benchmarks/imports.py on the 2-core machine: 7.1 s for ``import torch,
hippynn`` against 4.0 s through this module). kdcg runs hippynn's numba kernels on the CPU and its triton or
numba kernels on a GPU, never the compiled ``pytorch`` ones, so the wrapper is skipped while
hippynn is imported (left uncompiled, that implementation still computes the same numbers).
With ``HIPPYNN_USE_CUSTOM_KERNELS=pytorch`` (or ``False``, which means the same to hippynn)
hippynn is imported as it is. On a GPU machine whose hippynn picks its triton kernels, triton's
own import brings Dynamo in anyway (seen on an H200), so the saving is the CPU jobs', and of
those the label, ensemble and MD jobs': a training job imports Dynamo at its first optimizer
step (torch.optim's ``step`` does, whatever the kernels). On one thread and at kdcg's sizes
the numba kernels are also the faster ones (benchmarks/training.py prints both).

Import this module before the first ``hippynn`` import of a process (kdcg.models.model and kdcg.models.pairs
do).

Also: hippynn's CPU kernels (envsum and its gradients) sort the pairs by bead and reorder every
pair array by advanced indexing (``_CacheEntry.retrieve``); ``index_select`` gathers the same
elements faster on a CPU, so the reordering uses it (benchmarks/md.py's "hippynn's sensitivity"
row runs without it and without kdcg.models.sensitivity).
"""

from __future__ import annotations

import os
import sys

import torch

if "hippynn" not in sys.modules and os.environ.get("HIPPYNN_USE_CUSTOM_KERNELS", "").lower() not in ("pytorch", "false"):
    _compile = torch.compile

    def _not_compiled(model=None, **kwargs):
        return model if model is not None else (lambda fn: fn)

    torch.compile = _not_compiled
    try:
        import hippynn  # noqa: F401
    finally:
        torch.compile = _compile


def _retrieve_by_index_select(self, others):
    """hippynn's ``_CacheEntry.retrieve``: the same tensors, gathered by ``index_select``."""
    return (self.argsort, self.key_ids, self.key_starts, self.key.index_select(0, self.argsort),
            [o.index_select(0, self.argsort) for o in others])


def reorder_pairs_by_index_select(on: bool = True) -> None:
    """On by default; ``on=False`` restores hippynn's own (for side-by-side checks)."""
    from hippynn.custom_kernels import utils

    utils._CacheEntry.retrieve = _retrieve_by_index_select if on else _hippynn_retrieve


from hippynn.custom_kernels import utils as _kernel_utils  # noqa: E402

_hippynn_retrieve = _kernel_utils._CacheEntry.retrieve
reorder_pairs_by_index_select()

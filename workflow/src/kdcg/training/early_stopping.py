"""Early stopping that ignores improvements too small to matter.

hippynn's ``PatienceController`` ends training ``termination_patience`` epochs after the last
epoch whose validation loss beat the best so far, by any amount. A model that keeps gaining
0.01 % per epoch at a learning rate of 1e-7 then trains to the epoch cap. Here an epoch restores
the patience only when it beats the loss that last restored it by the relative margin
``training.min_improvement`` (as the ``threshold`` of torch's ReduceLROnPlateau); the best
weights are still kept at every strict improvement. A margin of 0 is hippynn's rule.
"""

from __future__ import annotations

from kdcg.models import hippynn_import  # noqa: F401  (before the first hippynn import)
from hippynn.experiment.controllers import PatienceController


class MarginPatienceController(PatienceController):
    """``PatienceController`` whose patience counts epochs since the validation loss last fell
    below ``(1 - min_improvement)`` times the loss that last restored it."""

    _state_vars = PatienceController._state_vars + ("min_improvement", "patience_reference", "best_weights_epoch")

    def __init__(self, *args, min_improvement: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0.0 <= min_improvement < 1.0:
            raise ValueError(f"min_improvement must lie in [0, 1), got {min_improvement}")
        self.min_improvement = float(min_improvement)
        self.patience_reference = float("inf")  # the validation loss that last restored the patience
        self.best_weights_epoch = 0  # the epoch of the weights kept (any strict improvement)

    def push_epoch(self, epoch, better_model, metric, _print=print):
        value = float(metric)
        if better_model:
            self.best_weights_epoch = epoch
        if self.min_improvement == 0.0:
            restores = better_model
        else:
            restores = value < (1.0 - self.min_improvement) * self.patience_reference
        if restores:
            self.patience_reference = value
        # the parent's bookkeeping (patience, schedulers, epoch count) sees only the improvements
        # that count; the tracker has already kept the best weights of any strict improvement
        return super().push_epoch(epoch, restores, metric, _print=_print)

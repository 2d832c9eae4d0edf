"""All replicas of one model advance together: one batched model evaluation per MD step.

LAMMPS's ``fix external pf/callback`` asks for the forces of the current positions inside
each step, so separate LAMMPS instances cannot simply be stepped in a loop. Each replica runs
its own LAMMPS instance in its own thread (the lammps module calls the library through ctypes,
which releases the GIL); their force callbacks meet at a rendezvous, where the last replica to
arrive evaluates the model once on all waiting frames and hands every replica its forces.
Each replica keeps its own thermostat, seeds, trajectory, restart file and stability record
(kdcg.md.replicas.run_replica); one that ends (finished or unstable) leaves the rendezvous and the
others go on without it.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from kdcg.errors import BatchAborted

log = logging.getLogger(__name__)


class ReplicaRendezvous:
    """Collects the force requests of the active replicas and evaluates them as one batch.

    ``model`` has ``evaluate_batch(species, positions (frames, beads, 3), cell)`` and, with a
    pair list, ``forget_pairs()`` (kdcg.models.model_forces.ModelForces,
    kdcg.models.compiled_forces.CompiledModelForces). Replicas ``join`` before their first step and ``leave`` when they
    end; while a joined replica is between callbacks (integrating, writing files) the others
    wait for it.
    """

    def __init__(self, model, species, cell):
        self.model, self.species, self.cell = model, species, cell
        self._cv = threading.Condition()
        self._active: set[int] = set()
        self._pending: dict[int, np.ndarray] = {}
        self._results: dict[int, object] = {}
        self._last_batch: tuple[int, ...] | None = None
        self._rebuild_pairs = False
        self.batch_sizes: list[int] = []  # one entry per evaluation (benchmarks, tests)
        self._aborted: BaseException | None = None

    def join(self, replica: int) -> None:
        with self._cv:
            self._active.add(replica)

    def leave(self, replica: int) -> None:
        with self._cv:
            self._active.discard(replica)
            self._pending.pop(replica, None)
            self._evaluate_if_complete()
            self._cv.notify_all()

    def abort(self, cause: BaseException) -> None:
        """A replica failed: every other one gets BatchAborted at its next request."""
        with self._cv:
            self._aborted = self._aborted or cause
            self._cv.notify_all()

    def forces_for(self, replica: int):
        """The callable a replica's force callback uses: (species, positions, cell) -> Evaluation."""
        def evaluate(_species, positions, _cell):
            return self.request(replica, positions)
        evaluate.forget_pairs = self.forget_pairs
        return evaluate

    def forget_pairs(self) -> None:
        """The next batched evaluation builds a new pair list (a replica wrote its restart file)."""
        with self._cv:
            self._rebuild_pairs = True

    def request(self, replica: int, positions: np.ndarray):
        with self._cv:
            if replica not in self._active:
                raise RuntimeError(f"replica {replica} asked for forces without joining the batch")
            self._pending[replica] = np.array(positions, dtype=np.float64)
            self._evaluate_if_complete()
            while replica not in self._results and self._aborted is None:
                self._cv.wait()
            if self._aborted is not None:
                raise BatchAborted(f"replica {replica} stopped: another replica of its batch failed ({self._aborted})")
            out = self._results.pop(replica)
        if isinstance(out, BaseException):
            raise out
        return out

    def _evaluate_if_complete(self) -> None:
        """Under the lock: when every active replica waits, one evaluation serves them all."""
        if not self._pending or not set(self._pending) >= self._active:
            return
        order = tuple(sorted(self._pending))
        try:
            if order != self._last_batch or self._rebuild_pairs:  # other frames in the batch, or a restart point
                forget = getattr(self.model, "forget_pairs", None)  # a model without a pair list has none
                if forget is not None:
                    forget()
                self._last_batch, self._rebuild_pairs = order, False
            evaluations = self.model.evaluate_batch(self.species, np.stack([self._pending[r] for r in order]), self.cell)
            self._results.update(zip(order, evaluations))
        except Exception as err:  # noqa: BLE001 - each waiting replica records it as its failure
            self._results.update({r: err for r in order})
        self.batch_sizes.append(len(order))
        self._pending.clear()
        self._cv.notify_all()


def numba_thread_count() -> int | None:
    """The calling thread's numba thread count (None without numba)."""
    try:
        import numba
    except ImportError:
        return None
    return numba.get_num_threads()


def run_together(replica_runs: list, rendezvous: ReplicaRendezvous) -> list:
    """Run each replica's ``run(forces)`` in its own thread, all against one rendezvous, and
    return their results in order. ``replica_runs``: (replica number, run) pairs, where ``run``
    takes the replica's force callable and returns its result record. A replica that raises
    leaves the batch; the first such error is raised once all threads have ended.

    The model is evaluated in whichever replica thread arrives last; numba's thread count is
    per thread (a new thread starts at NUMBA_NUM_THREADS, not at the caller's
    numba.set_num_threads), so every replica thread takes the caller's."""
    results: dict[int, object] = {}
    errors: list[BaseException] = []
    numba_threads = numba_thread_count()

    def worker(replica: int, run) -> None:
        if numba_threads is not None:
            import numba

            numba.set_num_threads(numba_threads)
        try:
            results[replica] = run(rendezvous.forces_for(replica))
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(err)
            # the others stop as well: had they finished alone (a batch of another size), their
            # last bits would differ from the run that a rerun gives
            rendezvous.abort(err)
        finally:
            rendezvous.leave(replica)

    # all join before any thread starts: a replica that asked for forces before another had
    # joined would be evaluated alone, in a batch of another size than a later run's, and a
    # batch's size decides the forces' last bits
    for r, _ in replica_runs:
        rendezvous.join(r)
    threads = [threading.Thread(target=worker, args=(r, run), name=f"replica-{r}") for r, run in replica_runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:  # the failure itself, not the stops it caused
        raise next((e for e in errors if not isinstance(e, BatchAborted)), errors[0])
    return [results[r] for r, _ in replica_runs]

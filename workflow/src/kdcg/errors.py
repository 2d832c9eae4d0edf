"""The one exception kdcg raises for bad input: it names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input. ``str(err)`` is one line: ``<file>: <problem>``."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        # one line, whatever the wrapped library's message looked like
        problem = "; ".join(line.strip() for line in str(problem).splitlines() if line.strip())
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss; the message names the epoch and the last good checkpoint."""

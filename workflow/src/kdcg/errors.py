"""The one exception kdcg raises for bad input: it names the file and the problem."""

from __future__ import annotations

from pathlib import Path


def one_line(message) -> str:
    """A message on one line, whatever the wrapped library's looked like."""
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


class InputError(Exception):
    """Bad user input. ``str(err)`` is one line: ``<file>: <problem>``."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        problem = one_line(problem)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss; the message names the epoch and the last good checkpoint."""


class StorageError(Exception):
    """A file could not be written or read back (disk full, quota, permissions, I/O error):
    never a model's instability. ``str(err)`` is one line naming the file; the job records
    nothing, and a rerun once the storage is back resumes where the last checkpoint left it."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        problem = one_line(problem)
        super().__init__(f"{path or 'a file'}: {problem} (the file system refused it; nothing was recorded: rerun"
                         " once it takes writes again, the job resumes from its last checkpoint)")


#: what LAMMPS and the C library say when a file system refuses a write or an open
_STORAGE_WORDS = ("No space left on device", "Disk quota exceeded", "Read-only file system", "Input/output error",
                  "Permission denied", "Error writing", "Cannot open", "Could not open", "File too large")


def is_storage_failure(message: str) -> bool:
    """Whether an error message (LAMMPS's, for one) is about a file, not about the physics."""
    return any(word.lower() in str(message).lower() for word in _STORAGE_WORDS)


class BatchAborted(Exception):
    """Another replica of a batch (kdcg.md.replica_batch) failed -- a full disk, a bug: this one
    stops too, recording nothing, so that a rerun resumes them all from their shared restart."""

"""Reading and writing kdcg's files: every reader names the file and what is wrong with it,
every writer replaces its file atomically (a killed job never leaves half a file behind)."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
import zlib
from pathlib import Path

from kdcg.errors import InputError


def _existing(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} not found")
    return path


def read_npz(path: Path, what: str) -> dict:
    """All arrays of an NPZ file (no pickles); a missing, truncated or foreign file is an InputError."""
    import numpy as np

    path = _existing(path, what)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as err:
        raise InputError(path, f"{what} cannot be read (truncated, or not an NPZ file): {type(err).__name__}: {err}") from None


def read_json(path: Path, what: str):
    path = _existing(path, what)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"{what} is not valid JSON (truncated?): {err}") from None


def read_torch(path: Path, what: str):
    """A torch-pickled file (trusted: written by kdcg), loaded onto the CPU."""
    import pickle

    import torch

    path = _existing(path, what)
    try:
        return torch.load(path, weights_only=False, map_location="cpu")
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, ValueError,
            AttributeError, ModuleNotFoundError, TypeError) as err:
        raise InputError(path, f"{what} cannot be read (truncated, or not a PyTorch file): {type(err).__name__}: {err}") from None


def write_json(path: Path, obj, **dumps_kwargs) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, **dumps_kwargs) + "\n")
    os.replace(tmp, path)


def write_table_csv(path: Path, header: list[str], rows: list[dict], float_format: str = ".4g") -> None:
    """A CSV of dict rows in the header's order: floats at float_format, None as an empty cell."""
    import csv
    import io

    buffer = io.StringIO()
    w = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (format(v, float_format) if isinstance(v, float) else ("" if v is None else v))
                    for k, v in row.items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buffer.getvalue())
    os.replace(tmp, path)


def write_torch(obj, path: Path) -> None:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard link when possible: a trajectory can be hundreds of MB."""
    dst = Path(dst)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


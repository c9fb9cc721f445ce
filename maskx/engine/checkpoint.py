"""Checkpoints: written atomically, kept in a rotation, read without running code.

A checkpoint is a ``torch.save`` dict of tensors and plain data only, so it loads with
``torch.load(weights_only=True)``: opening a checkpoint cannot execute anything. It holds
what inference needs (model configuration and weights, categories, the mask heads) and
what an exact resume needs (optimizer, iteration, data position, RNG state).
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "maskx-checkpoint"
VERSION = 1
_PERIODIC = re.compile(r"^model_(\d{7})\.pt$")
FINAL_NAME = "model_final.pt"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not what was expected."""


def save_atomic(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` through a temporary file and a rename, so a crash or
    a kill mid-write leaves either the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def periodic_path(directory: str | os.PathLike, iteration: int) -> Path:
    return Path(directory) / f"model_{iteration:07d}.pt"


def periodic_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """The run's periodic checkpoints, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m[1]), p) for p in directory.iterdir() if (m := _PERIODIC.match(p.name))]
    return [p for _, p in sorted(found)]


def rotate(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` periodic checkpoints."""
    for old in periodic_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest checkpoint of a run: the final one if the run finished."""
    final = Path(directory) / FINAL_NAME
    if final.is_file():
        return final
    found = periodic_checkpoints(directory)
    return found[-1] if found else None


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a maskx checkpoint with ``weights_only=True``; errors name the file and the problem."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path}: a directory without checkpoints (model_*.pt)")
        path = found
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch explains why on the line after "WeightsUnpickler error:".
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = next((lines[i + 1] for i, line in enumerate(lines[:-1]) if "WeightsUnpickler error" in line),
                      lines[0] if lines else "")
        raise CheckpointError(f"{path}: not a readable checkpoint: loading it with weights_only=True was "
                              f"refused ({detail}); a checkpoint holds only tensors and plain data") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): "
                              f"{str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a maskx checkpoint (a torch file, but without the maskx format tag)")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {state.get('version')!r}; this maskx reads {VERSION}")
    state["path"] = str(path)
    return state

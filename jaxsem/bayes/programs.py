"""Compiled sampler programs kept on disk, so that a later session fits a model of the
same structure and data shapes without tracing or compiling (seconds for a factor
model; JAX's own persistent cache still traces and lowers the program every time).

A program is stored under a digest of everything that decides it: the model's
structure (layout and schedule, the ModelSpec by its structure key), the chunk
options and array shapes, the XLA options, the versions of the libraries traced into
it (jax, jaxlib, BlackJAX, numpy), the backend and device, the CPU's instruction-set
flags (XLA compiles for the host CPU), and the source of jaxsem itself. Off unless a
folder is given (:func:`keep_programs`; ``jaxsem run`` keeps them in
$JAXSEM_CACHE_DIR/programs). A file that cannot be read is ignored and rewritten.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import os
import pickle
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np
from jax.experimental import serialize_executable

import jaxsem
from jaxsem.spec import ModelSpec

_folder: Path | None = None
# the libraries whose code is traced into a sampler program (BlackJAX: the NUTS block)
TRACED_LIBRARIES = ("jax", "jaxlib", "blackjax", "numpy")


def keep_programs(folder: str | os.PathLike | None) -> None:
    """Keep compiled sampler programs in ``folder`` (None: stop keeping them)."""
    global _folder
    _folder = Path(folder) if folder else None


def program_key(parts, compiler_options) -> str | None:
    """The digest naming a program, or None when programs are not kept."""
    if _folder is None:
        return None
    try:
        identity = repr((_identity(parts), sorted((compiler_options or {}).items()),
                         _environment()))
    except TypeError:   # a part without a stable description: not kept
        return None
    return hashlib.sha256(identity.encode()).hexdigest()


def load(key: str | None):
    """(compiled program, whether its chain groups may run concurrently), or None."""
    if key is None or not (_folder / key).is_file():
        return None
    try:
        with open(_folder / key, "rb") as file:
            serialized, in_tree, out_tree, concurrent = pickle.load(file)
        return serialize_executable.deserialize_and_load(serialized, in_tree, out_tree), concurrent
    except Exception:   # noqa: BLE001 (a damaged or foreign file: compile afresh)
        return None


def store(key: str | None, compiled, concurrent: bool) -> None:
    """Write a program (atomically: a concurrent reader sees all of it or nothing)."""
    if key is None:
        return
    try:
        payload = pickle.dumps((*serialize_executable.serialize(compiled), concurrent))
        _folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=_folder, prefix=".", delete=False) as file:
            file.write(payload)
        os.replace(file.name, _folder / key)
    except (OSError, ValueError, TypeError, pickle.PicklingError):
        return   # a read-only folder or a program that cannot be serialized: not kept


def _identity(value):
    """A deterministic, hashable description of a program's static inputs."""
    if isinstance(value, ModelSpec):
        return ("ModelSpec", value.structure_key)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__qualname__,
                tuple((f.name, _identity(getattr(value, f.name)))
                      for f in dataclasses.fields(value)))
    if isinstance(value, (tuple, list)):
        return (type(value).__qualname__, tuple(_identity(v) for v in value))
    if isinstance(value, dict):
        return tuple(sorted((k, _identity(v)) for k, v in value.items()))
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if value is None or isinstance(value, (bool, int, float, str, bytes, np.generic)):
        return value
    raise TypeError(f"no stable identity for {type(value).__name__}")


@functools.lru_cache(maxsize=1)
def _environment() -> tuple:
    device = jax.devices()[0]
    return (tuple(importlib.metadata.version(name) for name in TRACED_LIBRARIES),
            device.platform, device.device_kind, jax.config.jax_enable_x64, sys.version,
            _cpu_flags(), _source_digest())


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            return next((line for line in file if line.startswith("flags")), "")
    except OSError:
        import platform  # noqa: PLC0415
        return platform.processor() + platform.machine()


def _source_digest() -> str:
    """Digest of jaxsem's own source (its kernels included): a changed sampler never
    loads a program compiled from the old one."""
    from jaxsem import kernels  # noqa: PLC0415
    digest = hashlib.sha256()
    for root in sorted({Path(jaxsem.__file__).parent, Path(kernels.__file__).parent}):
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()

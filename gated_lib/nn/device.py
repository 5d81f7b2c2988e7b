"""Where tensors live, in which precision, and how to make a run repeatable: one place for each.

Device order: an explicit argument, else the environment variable GATED_LIB_DEVICE, else cuda,
then mps (Apple), then cpu. "auto" (as argument or variable) means "pick by that order". A device
that is asked for but absent is an error, never a silent fallback: a lab that believes it runs on a
GPU and runs on the CPU wastes an afternoon.

    get_device()                  -> torch.device('cuda') on a GPU machine, else cpu
    get_device("cpu")             -> cpu, whatever the machine
    GATED_LIB_DEVICE=cpu python ... forces cpu everywhere get_device() is used

Dtype: float32 by default, float64 for gradient checks (COURSE_DESIGN.md).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from gated_lib.errors import DTypeError, GatedLibError

ENV_DEVICE = "GATED_LIB_DEVICE"


class DeviceError(GatedLibError):
    """A device was requested that this machine does not have (or that is not a device)."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The device types usable here, in preference order (always ends with "cpu")."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if _mps_available():
        found.append("mps")
    return found + ["cpu"]


def get_device(device=None) -> torch.device:
    """Resolve a device: argument, else $GATED_LIB_DEVICE, else cuda > mps > cpu.

    device: None, "auto", "cpu", "cuda", "cuda:1", "mps", or a torch.device.
    Raises DeviceError naming where the request came from when it cannot be honoured.
    """
    source = "device"
    if device is None:
        env = os.environ.get(ENV_DEVICE, "").strip()
        if env:
            device, source = env, f"{ENV_DEVICE} (environment variable)"
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device(available_devices()[0])
    try:
        dev = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise DeviceError(f"{source}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{source}: expected a device this machine has {available_devices()}, got {device!r} "
                              f"(torch.cuda.is_available() is False; torch {torch.__version__})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{source}: expected a CUDA index below {torch.cuda.device_count()}, got {device!r}")
    elif dev.type == "mps" and not _mps_available():
        raise DeviceError(f"{source}: expected a device this machine has {available_devices()}, got {device!r} "
                          f"(torch.backends.mps.is_available() is False)")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"{source}: expected 'auto', 'cpu', 'cuda' or 'mps', got {device!r}")
    return dev


_DTYPES = {
    "float32": torch.float32, "float": torch.float32, "fp32": torch.float32, "single": torch.float32,
    "float64": torch.float64, "double": torch.float64, "fp64": torch.float64,
    "float16": torch.float16, "half": torch.float16, "fp16": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def resolve_dtype(dtype=None, device=None) -> torch.dtype:
    """A floating torch dtype from None (float32), a name ("float64"), a torch or a numpy dtype.

    With a device, also checks that the device supports it (mps has no float64).
    """
    if dtype is None:
        out = torch.float32
    elif isinstance(dtype, torch.dtype):
        out = dtype
    elif isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _DTYPES:
        out = _DTYPES[dtype.lower().removeprefix("torch.")]
    else:
        try:
            out = _DTYPES[np.dtype(dtype).name]
        except (TypeError, KeyError):
            raise DTypeError(f"dtype: expected a floating dtype (one of float32, float64, float16, bfloat16), "
                             f"got {dtype!r}") from None
    if not out.is_floating_point:
        raise DTypeError(f"dtype: expected a floating dtype (one of float32, float64, float16, bfloat16), got {dtype!r}")
    if device is not None and torch.device(device).type == "mps" and out == torch.float64:
        raise DTypeError("dtype: mps has no float64; expected float32 (or run gradient checks on cpu), got float64")
    return out


def seed_everything(seed: int, deterministic: bool = False) -> np.random.Generator:
    """Seed python's random, numpy's global RNG and torch (CPU and every GPU); return a numpy Generator.

    deterministic=True also asks torch for deterministic kernels (cuDNN's RNN included), at some
    speed cost; on CUDA that needs CUBLAS_WORKSPACE_CONFIG, which is set here if absent.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise GatedLibError(f"seed: expected a non-negative int, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)                                        # seeds every CUDA device too
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    return np.random.default_rng(seed)


def rng_state() -> dict:
    """Every global RNG state (python, numpy, torch CPU, each CUDA device), for a checkpoint."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

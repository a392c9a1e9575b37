"""Small device helpers: choose a device, autocast, move data, free memory, describe the machine."""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import platform
import re
from pathlib import Path
from typing import Any

import torch

VALID_PREFERENCES = ("auto", "cpu", "cuda", "cuda:<index>", "mps")
CPU_BATCH_CAP = 16

_CUDA_PATTERN = re.compile(r"cuda(?::(\d+))?")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Names of the devices torch can use here, e.g. ``["cpu", "cuda:0"]``."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if _mps_available():
        devices.append("mps")
    return devices


def _unavailable(requested: str) -> RuntimeError:
    return RuntimeError(
        f"device {requested!r} is not available on this machine (available: {', '.join(available_devices())}); "
        'pass device="cpu" or device="auto"'
    )


def choose_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Resolve a device preference; "auto" (or None) picks cuda, then mps, then cpu."""
    if isinstance(preference, torch.device):
        if preference.type not in ("cpu", "cuda", "mps"):
            raise ValueError(
                f"unsupported device type {preference.type!r}; valid: {', '.join(VALID_PREFERENCES)}"
            )
        preference = str(preference)
    if preference is None:
        preference = "auto"
    if not isinstance(preference, str):
        raise ValueError(
            f"device must be a string, torch.device or None, got {preference!r}; "
            f"valid strings: {', '.join(VALID_PREFERENCES)}"
        )
    name = preference.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise _unavailable(preference)
        return torch.device("mps")
    cuda_match = _CUDA_PATTERN.fullmatch(name)
    if cuda_match is None:
        raise ValueError(f"unknown device {preference!r}; valid: {', '.join(VALID_PREFERENCES)}")
    if not torch.cuda.is_available():
        raise _unavailable(preference)
    if cuda_match.group(1) is None:
        return torch.device("cuda")
    index = int(cuda_match.group(1))
    if index >= torch.cuda.device_count():
        raise _unavailable(preference)
    return torch.device("cuda", index)


def autocast_dtype(device: str | torch.device) -> torch.dtype | None:
    """Mixed-precision dtype for a device: bfloat16 (or float16) on CUDA, None (float32) elsewhere."""
    if torch.device(device).type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: str | torch.device, enabled: bool = True) -> contextlib.AbstractContextManager[Any]:
    """Context manager that autocasts on CUDA and does nothing on CPU/MPS or when disabled."""
    dtype = autocast_dtype(device)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def to_device(obj: Any, device: str | torch.device) -> Any:
    """Move tensors and modules, also inside nested lists/tuples/dicts, to ``device``; leave the rest as is."""
    if isinstance(obj, torch.Tensor | torch.nn.Module):
        return obj.to(device)
    if isinstance(obj, dict):
        moved = copy.copy(obj)  # keeps the dict subclass (OrderedDict, defaultdict factory)
        moved.update((key, to_device(value, device)) for key, value in obj.items())
        return moved
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(to_device(item, device) for item in obj))
    if isinstance(obj, tuple):
        return tuple(to_device(item, device) for item in obj)
    if isinstance(obj, list):
        return [to_device(item, device) for item in obj]
    return obj


def free_memory(device: str | torch.device | None = None) -> None:
    """Run the garbage collector and release cached accelerator memory (all accelerators if device is None)."""
    gc.collect()
    device_type = None if device is None else torch.device(device).type
    if device_type in (None, "cuda") and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    if device_type in (None, "mps") and _mps_available():
        torch.mps.empty_cache()


def _cpu_model_name(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo_path.read_text().splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _usable_cpu_count() -> int:
    # The affinity mask reflects container/cgroup CPU limits that os.cpu_count() ignores.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def device_summary(device: str | torch.device | None = "auto") -> str:
    """One line describing the device for reports, e.g. "cpu: AMD EPYC, 2 cores, torch 2.5.1"."""
    resolved = choose_device(device)
    torch_version = f"torch {torch.__version__}"
    if resolved.type == "cuda":
        index = resolved.index if resolved.index is not None else torch.cuda.current_device()
        properties = torch.cuda.get_device_properties(index)
        memory_gib = properties.total_memory / 2**30
        return f"cuda: {properties.name}, {memory_gib:.1f} GiB, {torch_version}"
    if resolved.type == "mps":
        return f"mps: {platform.processor() or 'Apple silicon'}, {torch_version}"
    return f"cpu: {_cpu_model_name()}, {_usable_cpu_count()} cores, {torch_version}"


def suggest_batch_size(
    device: str | torch.device, per_item_bytes: int, max_batch: int = 256, fraction: float = 0.5
) -> int:
    """Batch size that fits ``fraction`` of free CUDA memory, capped at ``max_batch``; a small cap elsewhere."""
    if isinstance(per_item_bytes, bool) or not isinstance(per_item_bytes, int) or per_item_bytes <= 0:
        raise ValueError(f"per_item_bytes must be a positive integer, got {per_item_bytes!r}")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}; 0.5 leaves room for activations")
    resolved = torch.device(device)
    if resolved.type != "cuda":
        return min(CPU_BATCH_CAP, max_batch)
    free_bytes, _total_bytes = torch.cuda.mem_get_info(resolved)
    fitting = int(free_bytes * fraction) // per_item_bytes
    return max(1, min(fitting, max_batch))

from __future__ import annotations

import collections
import contextlib
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from clipcam_utils import device as device_module
from clipcam_utils.device import (
    CPU_BATCH_CAP,
    autocast,
    autocast_dtype,
    available_devices,
    choose_device,
    device_summary,
    free_memory,
    suggest_batch_size,
    to_device,
)


@pytest.fixture
def no_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


@pytest.fixture
def two_fake_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


# --- choose_device -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("preference", ["auto", None, "AUTO", " auto "])
def test_auto_picks_cpu_without_accelerators(no_accelerators: None, preference: str | None) -> None:
    assert choose_device(preference) == torch.device("cpu")


def test_auto_picks_cuda_when_available(two_fake_gpus: None) -> None:
    assert choose_device("auto") == torch.device("cuda")


def test_auto_prefers_mps_over_cpu(no_accelerators: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)
    assert choose_device() == torch.device("mps")


def test_auto_prefers_cuda_over_mps(two_fake_gpus: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)
    assert choose_device() == torch.device("cuda")


def test_explicit_cpu_always_works(two_fake_gpus: None) -> None:
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(torch.device("cpu")) == torch.device("cpu")


def test_explicit_cuda_indices(two_fake_gpus: None) -> None:
    assert choose_device("cuda") == torch.device("cuda")
    assert choose_device("cuda:1") == torch.device("cuda", 1)
    assert choose_device(torch.device("cuda", 0)) == torch.device("cuda", 0)


def test_cuda_index_beyond_device_count_raises(two_fake_gpus: None) -> None:
    with pytest.raises(RuntimeError, match=r"'cuda:2' is not available.*cuda:0, cuda:1"):
        choose_device("cuda:2")


@pytest.mark.parametrize("preference", ["cuda", "cuda:1", "mps", torch.device("cuda")])
def test_unavailable_accelerator_raises_and_suggests_cpu(
    no_accelerators: None, preference: str | torch.device
) -> None:
    with pytest.raises(
        RuntimeError, match=r'not available on this machine \(available: cpu\); pass device="cpu"'
    ):
        choose_device(preference)


@pytest.mark.parametrize("preference", ["gpu", "tpu", "cuda:x", "cuda1", "", 3])
def test_unknown_preference_lists_valid_ones(no_accelerators: None, preference: object) -> None:
    with pytest.raises(ValueError, match=r"auto, cpu, cuda, cuda:<index>, mps"):
        choose_device(preference)  # type: ignore[arg-type]


def test_unsupported_torch_device_type_raises() -> None:
    with pytest.raises(ValueError, match="unsupported device type 'meta'"):
        choose_device(torch.device("meta"))


def test_available_devices(no_accelerators: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert available_devices() == ["cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert available_devices() == ["cpu", "cuda:0", "cuda:1"]


# --- autocast ----------------------------------------------------------------------------------------------


def test_autocast_dtype_is_none_off_cuda() -> None:
    assert autocast_dtype("cpu") is None
    assert autocast_dtype(torch.device("mps")) is None


@pytest.mark.parametrize(("bf16", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_autocast_dtype_on_cuda(monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: torch.dtype) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    assert autocast_dtype("cuda:0") == expected


def test_autocast_on_cpu_is_a_no_op() -> None:
    context = autocast("cpu")
    assert isinstance(context, contextlib.nullcontext)
    with context:
        product = torch.ones(2, 2) @ torch.ones(2, 2)
    assert product.dtype == torch.float32


def test_autocast_disabled_on_cuda_is_a_no_op() -> None:
    assert isinstance(autocast("cuda", enabled=False), contextlib.nullcontext)


# --- to_device ---------------------------------------------------------------------------------------------


class Pair(NamedTuple):
    left: torch.Tensor
    right: str


def test_to_device_moves_nested_containers_and_keeps_other_objects() -> None:
    tensor = torch.arange(3, dtype=torch.float64)
    module = torch.nn.Linear(2, 2)
    payload = {"images": [tensor, (tensor, "label")], "model": module, "count": 4, "pair": Pair(tensor, "x")}
    moved = to_device(payload, "meta")
    assert moved["images"][0].device.type == "meta"
    assert moved["images"][0].dtype == torch.float64
    assert isinstance(moved["images"][1], tuple)
    assert moved["images"][1][0].device.type == "meta"
    assert moved["images"][1][1] == "label"
    assert moved["model"] is module  # nn.Module.to moves in place
    assert module.weight.device.type == "meta"
    assert moved["count"] == 4
    assert isinstance(moved["pair"], Pair)
    assert moved["pair"].left.device.type == "meta"
    assert moved["pair"].right == "x"
    assert tensor.device.type == "cpu"  # the input tensors are not modified


def test_to_device_keeps_dict_subclass() -> None:
    ordered = collections.OrderedDict([("b", torch.zeros(1)), ("a", torch.ones(1))])
    moved = to_device(ordered, "meta")
    assert type(moved) is collections.OrderedDict
    assert list(moved) == ["b", "a"]
    assert moved["a"].device.type == "meta"
    assert ordered["a"].device.type == "cpu"


def test_to_device_leaves_non_tensors_unchanged() -> None:
    marker = object()
    assert to_device(marker, "cpu") is marker
    assert to_device("text", "cpu") == "text"
    assert to_device(None, "cpu") is None


# --- free_memory, device_summary ---------------------------------------------------------------------------


def test_free_memory_runs_gc_and_skips_cuda_when_not_initialised(
    no_accelerators: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    collected: list[bool] = []
    monkeypatch.setattr(device_module.gc, "collect", lambda: collected.append(True) or 0)
    monkeypatch.setattr(
        torch.cuda, "empty_cache", lambda: pytest.fail("empty_cache must not run without CUDA")
    )
    assert free_memory() is None
    assert free_memory("cpu") is None
    assert collected == [True, True]


def test_free_memory_empties_cuda_cache_when_cuda_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    emptied: list[bool] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    free_memory("cuda")
    free_memory("cpu")
    assert emptied == [True]


def test_device_summary_on_cpu(no_accelerators: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "_cpu_model_name", lambda: "Test CPU 9000")
    monkeypatch.setattr(device_module, "_usable_cpu_count", lambda: 2)
    assert device_summary() == f"cpu: Test CPU 9000, 2 cores, torch {torch.__version__}"


def test_device_summary_real_cpu_is_one_line() -> None:
    summary = device_summary("cpu")
    assert summary.startswith("cpu: ")
    assert summary.endswith(f" cores, torch {torch.__version__}")
    assert "\n" not in summary


def test_cpu_model_name_reads_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7R13 Processor\n")
    assert device_module._cpu_model_name(cpuinfo) == "AMD EPYC 7R13 Processor"


def test_cpu_model_name_falls_back_to_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module.platform, "processor", lambda: "x86_64")
    assert device_module._cpu_model_name(tmp_path / "missing") == "x86_64"


# --- suggest_batch_size ------------------------------------------------------------------------------------


def test_suggest_batch_size_on_cpu_is_small_cap() -> None:
    assert CPU_BATCH_CAP == 16
    assert suggest_batch_size("cpu", per_item_bytes=1) == 16
    assert suggest_batch_size("cpu", per_item_bytes=1, max_batch=4) == 4


def test_suggest_batch_size_on_cuda_uses_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    gib, mib = 2**30, 2**20
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * gib, 80 * gib))
    # Half of 8 GiB is 4096 MiB; at 100 MiB an item that is 40 whole items.
    assert suggest_batch_size("cuda", per_item_bytes=100 * mib) == 40
    assert suggest_batch_size("cuda", per_item_bytes=100 * mib, fraction=1.0) == 81
    assert suggest_batch_size("cuda", per_item_bytes=1) == 256
    assert suggest_batch_size("cuda", per_item_bytes=100 * gib) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_item_bytes": 0}, "per_item_bytes must be a positive integer"),
        ({"per_item_bytes": 1.5}, "per_item_bytes must be a positive integer"),
        ({"per_item_bytes": 10, "max_batch": 0}, "max_batch must be an integer >= 1"),
        ({"per_item_bytes": 10, "fraction": 0.0}, r"fraction must be in \(0, 1\]"),
        ({"per_item_bytes": 10, "fraction": 1.5}, r"fraction must be in \(0, 1\]"),
    ],
)
def test_suggest_batch_size_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        suggest_batch_size("cpu", **kwargs)

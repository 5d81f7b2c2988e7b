"""Device selection (argument > GATED_LIB_DEVICE > cuda > mps > cpu), dtypes, seeding; GPU checks
skip cleanly without a GPU, the CPU path always runs."""

from __future__ import annotations

import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gated_lib.errors import DTypeError  # noqa: E402
from gated_lib.nn import (ENV_DEVICE, DeviceError, LSTM, Recurrent, available_devices, get_device,  # noqa: E402
                          resolve_dtype, rng_state, seed_everything, set_rng_state)

def needs_cuda(f):
    return pytest.mark.gpu(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(f))



no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a CUDA GPU")


def test_argument_cpu_wins_over_everything(monkeypatch):
    monkeypatch.setenv(ENV_DEVICE, "cuda")
    assert get_device("cpu") == torch.device("cpu")


def test_environment_variable_overrides_the_automatic_choice(monkeypatch):
    monkeypatch.setenv(ENV_DEVICE, "cpu")
    assert get_device() == torch.device("cpu")
    assert get_device(None) == torch.device("cpu")


def test_auto_follows_the_preference_order(monkeypatch):
    monkeypatch.delenv(ENV_DEVICE, raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if "mps" in available_devices() else "cpu")
    assert get_device().type == expected
    assert get_device("auto").type == expected
    monkeypatch.setenv(ENV_DEVICE, "auto")
    assert get_device().type == expected
    assert available_devices()[-1] == "cpu"


def test_auto_picks_cuda_first_when_present(monkeypatch):
    monkeypatch.delenv(ENV_DEVICE, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_device().type in ("mps", "cpu")


def test_nonsense_device_names_the_argument_and_the_choices(monkeypatch):
    monkeypatch.delenv(ENV_DEVICE, raising=False)
    with pytest.raises(DeviceError, match=r"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu0'"):
        get_device("gpu0")
    monkeypatch.setenv(ENV_DEVICE, "tpu")
    with pytest.raises(DeviceError, match=r"GATED_LIB_DEVICE \(environment variable\): expected .* got 'tpu'"):
        get_device()


@no_cuda
def test_missing_cuda_is_an_error_not_a_silent_fallback(monkeypatch):
    with pytest.raises(DeviceError, match=r"device: expected a device this machine has \['cpu'\]|mps"):
        get_device("cuda")
    monkeypatch.setenv(ENV_DEVICE, "cuda")
    with pytest.raises(DeviceError, match="GATED_LIB_DEVICE"):
        get_device()


def test_resolve_dtype_accepts_names_torch_and_numpy_dtypes():
    assert resolve_dtype() is torch.float32
    assert resolve_dtype("float64") is torch.float64
    assert resolve_dtype("double") is torch.float64
    assert resolve_dtype(torch.float16) is torch.float16
    assert resolve_dtype(np.float64) is torch.float64
    assert resolve_dtype("torch.bfloat16") is torch.bfloat16


@pytest.mark.parametrize("bad", ["int32", torch.int64, "complex", 3])
def test_resolve_dtype_rejects_non_floating(bad):
    with pytest.raises(DTypeError, match="dtype: expected a floating dtype"):
        resolve_dtype(bad)


def test_float64_on_mps_is_refused():
    with pytest.raises(DTypeError, match="mps has no float64"):
        resolve_dtype("float64", device="mps")


def test_seed_everything_makes_every_rng_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    seed_everything(7)
    a = draw()
    seed_everything(7)
    assert draw() == a
    seed_everything(8)
    assert draw() != a
    g = seed_everything(7)
    assert isinstance(g, np.random.Generator) and g.random() == np.random.default_rng(7).random()


def test_rng_state_roundtrip():
    seed_everything(1)
    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_module_in_float64_and_on_cpu():
    m = LSTM(3, 4).to(device=get_device("cpu"), dtype=resolve_dtype("float64"))
    out, (h, c) = m(torch.randn(5, 2, 3, dtype=torch.float64))
    assert out.dtype == torch.float64 and out.device.type == "cpu"


@needs_cuda
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "peephole_lstm"])
def test_gpu_backends_agree_with_cpu(cell):
    torch.manual_seed(0)
    cpu = Recurrent(cell=cell, input_size=8, hidden_size=16, num_layers=2).double()
    x = torch.randn(20, 4, 8, dtype=torch.float64)
    ref_out, _ = cpu(x)
    ref_out.sum().backward()
    ref_grad = cpu.weight_hh_l0.grad.clone()
    gpu = Recurrent(cell=cell, input_size=8, hidden_size=16, num_layers=2).double().cuda()
    gpu.load_state_dict(cpu.state_dict())
    for backend in ["eager", "fused", "torch"]:
        try:
            gpu.backend = backend
        except Exception:
            continue                                       # not every backend exists for every cell
        gpu.zero_grad()
        out, _ = gpu(x.cuda())
        out.sum().backward()
        assert torch.allclose(out.cpu(), ref_out, atol=1e-8), backend
        assert torch.allclose(gpu.weight_hh_l0.grad.cpu(), ref_grad, atol=1e-8), backend


@needs_cuda
def test_cudnn_backend_in_float32_with_cuda_device_selection(monkeypatch):
    monkeypatch.setenv(ENV_DEVICE, "cuda")
    dev = get_device()
    m = LSTM(8, 16, backend="torch").to(dev)
    out, _ = m(torch.randn(10, 4, 8, device=dev))
    assert out.is_cuda

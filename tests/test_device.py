"""Training device: CPU always works; asking for a missing GPU falls back with a warning."""

import pytest
import torch

from compress_core.eval.device import compute_device
from compress_core.train.baseline import train


def test_cpu_is_chosen_when_asked(monkeypatch):
    monkeypatch.setenv("SLIMSCOPE_DEVICE", "cpu")
    assert compute_device() == torch.device("cpu")


def test_missing_cuda_falls_back_to_cpu_with_a_warning(monkeypatch):
    monkeypatch.setenv("SLIMSCOPE_DEVICE", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="using CPU"):
        assert compute_device() == torch.device("cpu")


def test_trained_model_comes_back_on_the_cpu(digits_mlp):
    base, data = digits_mlp
    assert {p.device.type for p in base.parameters()} == {"cpu"}
    model = train(base.__class__(data.in_shape, data.num_classes), data, epochs=1)
    assert {p.device.type for p in model.parameters()} == {"cpu"}

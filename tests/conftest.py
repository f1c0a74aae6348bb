"""Shared fixtures: a tiny conv net with a spec, and one cached digits baseline per session."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
from torch import nn

from compress_core.core.record import SPEC_ATTR, ModelSpec

# Keep the tests' trained baselines out of the user's cache; set before any engine import
# reads it, and inherited by the Streamlit server the browser test starts.
os.environ.setdefault("SLIMSCOPE_CACHE", tempfile.mkdtemp(prefix="slimscope-test-cache-"))
os.environ.setdefault("SLIMSCOPE_DATA_HOME", tempfile.mkdtemp(prefix="slimscope-test-data-"))


# ui/cache.py sets torch's thread count for the whole process when a page imports it
# ($SLIMSCOPE_THREADS, default 1), and float reductions, so training runs, depend on it: a
# baseline the app tests train (and cache on disk) would differ from one trained alone, and
# test_finetune's QAT-vs-one-shot comparison flipped. Keep one thread count for the session.
DEFAULT_THREADS = torch.get_num_threads()
os.environ.setdefault("SLIMSCOPE_THREADS", str(DEFAULT_THREADS))


@pytest.fixture(autouse=True)
def _same_threads_every_test():
    torch.set_num_threads(DEFAULT_THREADS)
    yield


class TinyNet(nn.Module):
    """conv -> bn -> conv -> fc -> fc: enough to exercise every code path in seconds."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, classes)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


@pytest.fixture
def tiny() -> nn.Module:
    torch.manual_seed(0)
    model = TinyNet().eval()
    with torch.no_grad():  # non-trivial BN statistics
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 2.0)
    setattr(model, SPEC_ATTR, ModelSpec("tiny", (1, 16, 16), 10))
    return model


@pytest.fixture(scope="session")
def cache_dir() -> str:
    return os.environ["SLIMSCOPE_CACHE"]


@pytest.fixture(scope="session")
def digits_lenet(cache_dir):
    """(LeNet-5 trained on digits, the data set): the offline default, trained once."""
    from compress_core.train.baseline import get_baseline

    return get_baseline("lenet5", "digits", cache_dir=cache_dir)


@pytest.fixture(scope="session")
def digits_mlp(cache_dir):
    from compress_core.train.baseline import get_baseline

    return get_baseline("mlp", "digits", cache_dir=cache_dir)

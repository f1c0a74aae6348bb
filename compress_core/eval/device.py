"""Where evaluation and training run: ``$SLIMSCOPE_DEVICE`` = auto (default) | cpu | cuda[:n].

Compression itself runs where the weights are (the cached baselines live on
the CPU), and masks and codes are computed on the CPU whatever the device, so
sizes and artifacts are bit-identical on every device. Only the forward
passes of evaluation (and training) move to the GPU.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict

import torch

from .memo import tensor_key

MAX_TENSORS = 8  # device copies of cached test tensors kept (a few data sets and splits)
# (source, copy): holding the source keeps its address from being reused by another tensor.
_COPIES: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
_LOCK = threading.Lock()


def compute_device() -> torch.device:
    """``$SLIMSCOPE_DEVICE`` ("auto", "cpu", "cuda", "cuda:1"); auto = CUDA when present.

    Asking for CUDA where there is none warns and falls back to the CPU.
    """
    name = os.environ.get("SLIMSCOPE_DEVICE", "auto").strip() or "auto"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        warnings.warn(
            f"SLIMSCOPE_DEVICE={name!r} is not auto, cpu or cuda; using CPU", stacklevel=2
        )
        return torch.device("cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            "SLIMSCOPE_DEVICE asks for CUDA but none is available; using CPU", stacklevel=2
        )
        return torch.device("cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def on_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; a cached tensor is copied there once and kept (LRU)."""
    if x.device == device:
        return x
    key = (tensor_key(x), str(device))
    with _LOCK:
        if key not in _COPIES:
            _COPIES[key] = (x, x.to(device))
            while len(_COPIES) > MAX_TENSORS:
                _COPIES.popitem(last=False)
        _COPIES.move_to_end(key)
        return _COPIES[key][1]

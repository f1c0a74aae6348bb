"""ONNX export of a compressed model: float32, and int8 QDQ for ONNX Runtime.

The float file is the compressed model exactly as the engine evaluates it:
pruned weights are zeros, channel-pruned layers are already rebuilt smaller,
quantized weights hold their dequantized values, and activation fake-quant
(``act_bits``) is exported as Round/Clip nodes. ONNX Runtime's predictions on
it equal the engine's (tested).

The int8 file is ONNX Runtime's own static quantization (QDQ format, int8
per-channel weights, uint8 activations, min-max ranges from training images)
applied to the float graph without our fake-quant nodes. We do not write
QuantizeLinear/DequantizeLinear nodes from our own codes because ORT's fused
int8 kernels (QLinearConv, QLinearMatMul) need a scale for every op *output*,
which our record does not have (it holds weight codes and layer *input*
ranges), and k-means codebooks are not affine grids at all. Weights already at
8 bits or fewer lose at most half an int8 step more; activations below 8 bits
run at 8 bits (ORT has no narrower activation kernels).

Example:
    >>> blob = export_onnx(compressed, "model.onnx")
    >>> blob8 = export_onnx(compressed, "model-int8.onnx", int8=True, calibration=batches)
"""

from __future__ import annotations

import copy
import io
import tempfile
import warnings
from pathlib import Path
from typing import BinaryIO

import torch
from torch import nn

from ..core.config import CompressionConfig
from ..core.quantize import ActivationQuant
from ..core.record import get_record, get_spec

OPSET = 17
INPUT, OUTPUT = "input", "logits"


class OnnxExportError(ValueError):
    """The model cannot be exported as asked; the message says what to do."""


def int8_applies(config: CompressionConfig) -> bool:
    """Whether an int8 file is offered: weights and/or activations at 8 bits or fewer."""
    return config.bits <= 8 or config.act_bits <= 8


def float_onnx(model: nn.Module, *, fake_quant: bool = True) -> bytes:
    """The model as a float32 ONNX file (batch size free); ``fake_quant`` keeps act quant."""
    spec = get_spec(model)
    if spec is None:
        raise OnnxExportError("the model has no input shape; build it with build_model(...)")
    model = copy.deepcopy(model).eval()  # never touch the caller's (possibly shared) model
    if not fake_quant:
        for m in model.modules():
            hooks = m._forward_pre_hooks
            for key in [k for k, h in hooks.items() if isinstance(h, ActivationQuant)]:
                del hooks[key]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript and takes seconds; this one is exact for our nets and takes ~0.1 s.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(1, *spec.in_shape),),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
        )
    return _with_metadata(buf.getvalue(), model)


def int8_onnx(model: nn.Module, calibration: list[torch.Tensor]) -> bytes:
    """ONNX Runtime static int8 QDQ of the model, ranges from ``calibration`` batches."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise OnnxExportError("int8 export needs calibration batches (training images)")

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calibration)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {INPUT: x.detach().float().numpy()}

    proto = onnx.load_from_string(float_onnx(model, fake_quant=False))
    with tempfile.TemporaryDirectory(prefix="slimscope-onnx-") as tmp:
        prepared, out = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(proto, prepared)  # shape inference + graph cleanup, as ORT advises
        quantize_static(
            prepared,
            out,
            Batches(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,  # u8 activations x s8 weights: ORT's x86 fast path
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        return out.read_bytes()


def export_onnx(
    model: nn.Module,
    path_or_buffer: str | Path | BinaryIO | None = None,
    *,
    int8: bool = False,
    calibration: list[torch.Tensor] | None = None,
) -> bytes:
    """Write the compressed model as ONNX (float32, or int8 QDQ) and return the bytes.

    Args:
        path_or_buffer: a file path or a writable binary buffer; None only returns the bytes.
        int8: ONNX Runtime static quantization; needs ``calibration`` (a few input batches).

    Example:
        >>> export_onnx(compress(base, CompressionConfig(prune_rate=0.5)), "small.onnx")
    """
    blob = int8_onnx(model, calibration or []) if int8 else float_onnx(model)
    if isinstance(path_or_buffer, (str, Path)):
        Path(path_or_buffer).write_bytes(blob)
    elif path_or_buffer is not None:
        path_or_buffer.write(blob)
    return blob


def _with_metadata(blob: bytes, model: nn.Module) -> bytes:
    """Name the model and its compression settings inside the file."""
    import onnx

    proto = onnx.load_from_string(blob)
    spec, record = get_spec(model), get_record(model)
    config = record.config if record is not None else CompressionConfig()
    proto.producer_name = "slimscope"
    proto.doc_string = f"{spec.name}: {config.label()}"
    onnx.helper.set_model_props(proto, {"slimscope_config": config.key(), "model": spec.name})
    return proto.SerializeToString()

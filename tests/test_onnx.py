"""ONNX export: the file is valid, and ONNX Runtime predicts what the engine evaluates."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from compress_core import CompressionConfig, compress, evaluate
from compress_core.__main__ import main
from compress_core.core.layers import weight_layers
from compress_core.core.pipeline import calibration_batches
from compress_core.core.quantize import ActivationQuant
from compress_core.format.onnx import OnnxExportError, export_onnx, int8_applies

FLOAT_CONFIGS = [
    CompressionConfig(),
    CompressionConfig(prune_rate=0.5, bits=4),
    CompressionConfig(prune_rate=0.9, scope="global", bits=3, quant="kmeans", act_bits=4),
    CompressionConfig(prune_rate=0.5, prune_method="l1-structured", bits=8, act_bits=8),
    CompressionConfig(bits=2, quant="symmetric", granularity="per_tensor", skip_first_last=False),
]
# Channel pruning without retraining is left out: a one-shot l2-structured 30 % LeNet-5 measured
# 0.34 pp (README, "ONNX export and latency"); its own test below checks the int8 file's shapes.
INT8_CONFIGS = [
    CompressionConfig(bits=8, act_bits=8),
    CompressionConfig(prune_rate=0.5, bits=4),
    CompressionConfig(prune_rate=0.9, scope="global", bits=6, quant="kmeans"),
]


def ort_predictions(blob: bytes, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0].argmax(axis=1)


def initializers(blob: bytes) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(blob).graph.initializer}


@pytest.fixture(scope="module", params=["mlp", "lenet5"])
def fashion_net(request, cache_dir):
    """A net trained one epoch on Fashion-MNIST: 10,000 test images, so 0.3 pp is 30 images
    (on digits' 450 it would be one image, finer than int8 rounding can promise)."""
    from compress_core.train.baseline import get_baseline

    return get_baseline(request.param, "fashion-mnist", epochs=1, cache_dir=cache_dir)


@pytest.mark.parametrize("net", ["digits_lenet", "digits_mlp"])
@pytest.mark.parametrize("config", FLOAT_CONFIGS, ids=lambda c: c.label())
def test_float_onnx_predicts_exactly_what_the_engine_evaluates(request, net, config):
    base, data = request.getfixturevalue(net)
    small = compress(base, config, calibration_batches(data))
    blob = export_onnx(small)
    onnx.checker.check_model(onnx.load_from_string(blob), full_check=True)
    ref = evaluate(small, data.test_x, data.test_y)
    assert np.array_equal(ort_predictions(blob, data.test_x), ref.predictions.numpy())


def test_float_onnx_holds_the_compressed_weights_with_pruned_ones_zero(digits_lenet):
    base, _ = digits_lenet
    small = compress(base, CompressionConfig(prune_rate=0.7, bits=5))
    weights = initializers(export_onnx(small))
    for name, t in small.state_dict().items():
        assert np.array_equal(weights[name], t.numpy()), name
    mask = small.slimscope_record.layers["conv2"].mask
    assert (weights["conv2.weight"] == 0).sum() >= (~mask).sum() > 0


def test_channel_pruned_layers_are_really_smaller_in_the_file(digits_lenet):
    base, _ = digits_lenet
    small = compress(base, CompressionConfig(prune_rate=0.5, prune_method="l1-structured"))
    dense, pruned = initializers(export_onnx(base)), initializers(export_onnx(small))
    assert pruned["conv2.weight"].shape == tuple(small.conv2.weight.shape)
    assert pruned["conv2.weight"].shape[0] < dense["conv2.weight"].shape[0]
    assert pruned["fc1.weight"].shape[1] < dense["fc1.weight"].shape[1]  # inputs shrank too
    assert sum(w.size for w in pruned.values()) < sum(w.size for w in dense.values())


@pytest.mark.parametrize("config", INT8_CONFIGS, ids=lambda c: c.label())
def test_int8_onnx_accuracy_is_within_0_3_pp_of_the_engine(fashion_net, config):
    base, data = fashion_net
    calib = calibration_batches(data)
    small = compress(base, config, calib)
    blob = export_onnx(small, int8=True, calibration=calib)
    proto = onnx.load_from_string(blob)
    onnx.checker.check_model(proto, full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [w for n, w in initializers(blob).items() if n.endswith("weight_quantized")]
    assert len(int8_weights) == len(weight_layers(small))
    assert all(w.dtype == np.int8 for w in int8_weights)
    ref = evaluate(small, data.test_x, data.test_y)
    accuracy = float((ort_predictions(blob, data.test_x) == data.test_y.numpy()).mean())
    assert abs(accuracy - ref.accuracy) <= 0.003 + 1e-9


def test_int8_file_of_a_channel_pruned_model_has_the_smaller_layers(digits_lenet):
    base, data = digits_lenet
    small = compress(base, CompressionConfig(prune_rate=0.5, prune_method="l1-structured"))
    weights = initializers(export_onnx(small, int8=True, calibration=calibration_batches(data)))
    assert weights["conv2.weight_quantized"].shape == tuple(small.conv2.weight.shape)
    assert weights["fc1.weight_quantized"].shape == tuple(small.fc1.weight.shape)


def test_export_writes_the_same_bytes_to_a_path_and_a_buffer_and_leaves_the_model(
    digits_lenet, tmp_path
):
    base, data = digits_lenet
    small = compress(base, CompressionConfig(bits=4, act_bits=6), calibration_batches(data))
    before = {k: v.clone() for k, v in small.state_dict().items()}
    buf = io.BytesIO()
    blob = export_onnx(small, tmp_path / "m.onnx")
    export_onnx(small, buf)
    assert blob == buf.getvalue() == (tmp_path / "m.onnx").read_bytes()
    # The int8 file drops the fake-quant nodes of a copy, never the caller's hooks.
    export_onnx(small, int8=True, calibration=calibration_batches(data)[:1])
    hooks = [h for m in small.modules() for h in m._forward_pre_hooks.values()]
    assert sum(isinstance(h, ActivationQuant) for h in hooks) == 3
    assert all(torch.equal(v, before[k]) for k, v in small.state_dict().items())


def test_bad_requests_say_what_to_do(tiny, digits_lenet):
    base, _ = digits_lenet
    with pytest.raises(OnnxExportError, match="calibration"):
        export_onnx(base, int8=True)
    del tiny.slimscope_spec
    with pytest.raises(OnnxExportError, match="build_model"):
        export_onnx(tiny)


def test_int8_is_offered_when_weights_or_activations_have_8_bits_or_fewer():
    assert int8_applies(CompressionConfig(bits=8))
    assert int8_applies(CompressionConfig(act_bits=6))
    assert not int8_applies(CompressionConfig(bits=12))
    assert not int8_applies(CompressionConfig(prune_rate=0.9))


def test_cli_writes_both_onnx_files(digits_lenet, cache_dir, tmp_path):
    f32, i8 = tmp_path / "m.onnx", tmp_path / "m8.onnx"
    args = ["run", "--model", "lenet5", "--data", "digits", "--cache-dir", cache_dir]
    args += ["--bits", "8", "--no-store", "--export-onnx", str(f32), "--export-onnx-int8", str(i8)]
    assert main(args) == 0
    _, data = digits_lenet
    small = compress(digits_lenet[0], CompressionConfig(bits=8))
    ref = evaluate(small, data.test_x, data.test_y)
    assert np.array_equal(ort_predictions(f32.read_bytes(), data.test_x), ref.predictions.numpy())
    onnx.checker.check_model(onnx.load(i8), full_check=True)

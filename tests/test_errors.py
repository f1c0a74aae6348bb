"""The per-layer error table against independent numpy computations."""

import json
import math

import numpy as np
import pytest
import torch

from compress_core import CompressionConfig, compress
from compress_core.__main__ import main
from compress_core.eval.errors import layer_errors, sqnr_db, to_records, worst_layer


def _np_sqnr(ref: np.ndarray, approx: np.ndarray) -> float:
    ref, approx = ref.astype(np.float64), approx.astype(np.float64)
    return 10 * np.log10(np.sum(ref**2) / np.sum((ref - approx) ** 2))


def test_sqnr_of_a_known_tensor_is_ten_log_signal_over_noise():
    ref = torch.tensor([3.0, 4.0])  # signal 25
    approx = torch.tensor([3.0, 3.0])  # noise 1
    assert sqnr_db(ref, approx) == pytest.approx(10 * math.log10(25))
    assert sqnr_db(ref, ref) == math.inf


def test_error_table_matches_numpy_on_every_compressed_layer(tiny):
    config = CompressionConfig(prune_rate=0.5, bits=3, skip_first_last=False)
    small = compress(tiny, config)
    torch.manual_seed(1)
    batch = torch.randn(32, 1, 16, 16)
    table = layer_errors(tiny, small, batch).set_index("layer")
    assert list(table.index) == ["conv1", "conv2", "fc1", "fc2"]
    before, after = dict(tiny.named_modules()), dict(small.named_modules())
    for name, row in table.iterrows():
        w = before[name].weight.detach().numpy().ravel()
        q = after[name].weight.detach().numpy().ravel()
        assert row["weight_mse"] == pytest.approx(np.mean((w.astype(float) - q) ** 2))
        assert row["weight_sqnr_db"] == pytest.approx(_np_sqnr(w, q))
        cos = float(np.dot(w, q) / (np.linalg.norm(w) * np.linalg.norm(q)))
        assert row["cosine"] == pytest.approx(cos, rel=1e-6)
    # fc2's output SQNR, computed without hooks: the logits of both models.
    with torch.no_grad():
        ref, out = tiny(batch).numpy(), small(batch).numpy()
    assert table.loc["fc2", "output_sqnr_db"] == pytest.approx(_np_sqnr(ref, out), rel=1e-6)


def test_more_bits_give_higher_weight_sqnr_and_the_worst_layer_is_the_minimum(tiny):
    batch = torch.randn(16, 1, 16, 16)
    sqnr = {}
    for bits in (2, 4, 8):
        small = compress(tiny, CompressionConfig(bits=bits, skip_first_last=False))
        table = layer_errors(tiny, small, batch)
        sqnr[bits] = table["weight_sqnr_db"].to_numpy()
        worst = worst_layer(table)
        assert (
            table.set_index("layer").loc[worst, "output_sqnr_db"] == table["output_sqnr_db"].min()
        )
    assert (sqnr[2] < sqnr[4]).all() and (sqnr[4] < sqnr[8]).all()


def test_structured_layers_have_no_elementwise_weight_error_and_records_are_json(tiny):
    config = CompressionConfig(
        prune_rate=0.5, prune_method="l1-structured", bits=4, skip_first_last=False
    )
    small = compress(tiny, config)
    table = layer_errors(tiny, small, torch.randn(8, 1, 16, 16))
    changed = table[table["weight_mse"].isna()]
    assert len(changed) >= 1  # channels removed: shapes differ
    rows = to_records(table)
    assert json.loads(json.dumps(rows, allow_nan=False)) == rows


def test_cli_run_json_has_the_error_table(digits_lenet, cache_dir, capsys):
    code = main(
        ["run", "--model", "lenet5", "--data", "digits", "--bits", "4", "--json", "--no-store"]
        + ["--cache-dir", cache_dir]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    layers = [row["layer"] for row in out["layer_errors"]]
    assert layers == [row["layer"] for row in out["layers"] if not row["skipped"]]
    assert all(row["weight_sqnr_db"] > 0 for row in out["layer_errors"])


def test_explore_layers_tab_shows_the_error_table_with_the_worst_layer_marked(digits_lenet):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from compress_core.catalog import text
    from compress_core.eval.errors import calibration_batch

    app = Path(__file__).resolve().parent.parent / "app.py"
    at = AppTest.from_file(str(app), default_timeout=300)
    at.session_state["explore_tab"] = text("en", "explore.tab_layers")  # only the open tab draws
    at.run()
    assert not at.exception
    column = text("en", "errors.output_sqnr_db")
    shown = next(d.value for d in at.dataframe if column in d.value.columns)
    base, data = digits_lenet
    small = compress(base, CompressionConfig(prune_rate=0.5, bits=4))  # Explore's default
    expected = layer_errors(base, small, calibration_batch(data))
    assert shown[column].tolist() == pytest.approx(expected["output_sqnr_db"].tolist())
    worst = worst_layer(expected)
    assert any(worst in c.value for c in at.caption)

"""The published MNIST points: consistent data, drawn on the replay chart, printed by the CLI."""

import pandas as pd
import pytest

from compress_core.catalog import text
from compress_core.io.models import build_model
from compress_core.train.deep_compression import PAPER
from compress_core.train.papers import COUNTS, DENSE_BYTES, POINTS, format_published, published
from ui.charts import replay_figure


def test_every_point_says_what_it_counts_and_is_a_plausible_mnist_result():
    for p in POINTS:
        assert p.counts in COUNTS, p
        assert 1 < p.ratio < 1000 and p.dense_bytes > p.size_bytes > 0, p
        assert p.error is None or 0 < p.error < 3, p  # MNIST LeNets err by about 1 %
        assert p.model in DENSE_BYTES, p


@pytest.mark.parametrize("model", sorted(DENSE_BYTES))
def test_reference_sizes_are_our_registry_networks_in_fp32(model):
    net = build_model(model, (1, 28, 28), 10)
    assert DENSE_BYTES[model] == 4 * sum(t.numel() for t in net.parameters())


def test_ratios_agree_with_bytes_where_a_paper_gives_both():
    both = [p for p in POINTS if p.reported_bytes is not None]
    assert {p.method for p in both} == {"EPR"} and len(both) == 2
    for p in both:
        # The papers round the ratio down and the size to 3 digits: within 1 %.
        assert p.dense_bytes / p.reported_bytes == pytest.approx(p.ratio, rel=0.01), p
        assert p.counts == "weights_biases"


def test_deep_compression_points_are_the_steppers_own_figures():
    dc = [p for p in POINTS if p.method == "Deep Compression"]
    assert {p.model for p in dc} == set(PAPER)
    for p in dc:
        paper = PAPER[p.model]
        assert (p.ratio, p.error, p.dense_bytes) == (
            paper.ratios["huffman"],
            paper.error_after,
            paper.dense_bytes,
        )
        # The same point the replay chart's "paper (MNIST)" trace draws.
        final = paper.points()[-1]
        assert final["artifact_bytes"] == round(p.size_bytes)
        assert final["accuracy"] == pytest.approx(p.accuracy)
        assert p.counts == "weights"


def test_published_filters_by_model_and_method():
    mlp = {p.method for p in published("mlp")}
    assert mlp == {"Deep Compression", "Soft weight-sharing", "EPR"}
    caffe = published("lenet5-caffe", exclude=("Deep Compression",))
    assert {p.method for p in caffe} == {"Soft weight-sharing", "EPR", "ECSQ"}
    assert published("lenet5") == []


def _stages() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "title": ["dense", "final"],
            "accuracy": [0.98, 0.979],
            "artifact_bytes": [1_066_440, 25_000],
            "ratio": [1.0, 42.7],
        }
    )


def test_replay_chart_draws_the_published_trace_with_what_each_counts():
    others = published("lenet5-caffe", exclude=("Deep Compression",))
    rows = pd.DataFrame([p.to_row() for p in others])
    fig = replay_figure(_stages(), None, None, rows)
    traces = [tr for tr in fig.data if tr.name == text("en", "chart.published_mnist")]
    assert len(traces) == 1
    trace = traces[0]
    drawn = [p for p in others if p.accuracy is not None]  # ECSQ has no accuracy here
    assert len(drawn) == 2 and list(trace.x) == [p.size_bytes for p in drawn]
    assert list(trace.y) == pytest.approx([100 * p.accuracy for p in drawn])
    for p, hover in zip(drawn, trace.hovertext, strict=True):
        assert text("en", f"papers.counts_{p.counts}") in hover and p.citation in hover
    assert not [tr for tr in replay_figure(_stages()).data if tr.name == trace.name]


def test_cli_prints_every_published_point(digits_mlp, capsys, cache_dir):
    from compress_core.__main__ import main

    table = format_published()
    for p in POINTS:
        assert f"{p.ratio:.0f}×" in table and p.citation in table
    argv = ["deep-compression", "--model", "mlp", "--data", "digits", "--prune-epochs", "1"]
    assert main([*argv, "--centroid-epochs", "0", "--cache-dir", cache_dir]) == 0
    assert table in capsys.readouterr().out

"""Published compression results on MNIST, as plain data, each saying what its bytes count.

Ratios from different papers count different bytes: Deep Compression counts the
weights only (biases left out), Entropy-Penalized Reparameterization counts real
bytes of weights and biases. Every point carries ``counts`` so a chart or a
table can say so next to the number. The Deep Compression points are read from
``deep_compression.PAPER`` (the figures the Recovery page's stepper already
uses), not copied here.

Example:
    >>> [p.label for p in published("mlp")]
    ['Deep Compression 40×', 'Soft weight-sharing 64×', 'EPR 124×']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .deep_compression import PAPER

# What a ratio counts (keys of the catalogs' "papers.counts_*" texts).
COUNTS = {
    "weights": "weights only, not biases",
    "weights_as_dc": "weights, sized with Deep Compression's storage scheme",
    "weights_biases": "real bytes of weights and biases",
    "unstated": "not recorded here",
}
# fp32 bytes of the networks the papers compress: 4 x their parameter count, weights and
# biases (LeNet-300-100: 266,610 parameters; Caffe's LeNet-5: 431,080), as our registry's
# `mlp` and `lenet5-caffe` have them (tests/test_papers.py checks).
DENSE_BYTES = {"mlp": 1_066_440, "lenet5-caffe": 1_724_320}


@dataclass(frozen=True)
class PublishedPoint:
    """One network compressed by one published method, as the paper reports it."""

    method: str  # short name: "Deep Compression", "EPR"
    citation: str  # authors, venue and year
    network: str  # the paper's name for the network
    model: str  # our registry's name for it: "mlp" | "lenet5-caffe"
    ratio: float  # the compression ratio the paper reports
    error: float | None  # MNIST top-1 test error after compression, %; None: not recorded here
    counts: str  # what the ratio counts, a key of COUNTS
    dense_bytes: int  # the reference size the ratio divides
    reported_bytes: int | None = None  # the compressed size, where the paper gives one

    @property
    def size_bytes(self) -> float:
        """The compressed size: the paper's own figure, else its reference size / ratio."""
        if self.reported_bytes is not None:
            return float(self.reported_bytes)
        return self.dense_bytes / self.ratio

    @property
    def accuracy(self) -> float | None:
        return None if self.error is None else 1 - self.error / 100

    @property
    def label(self) -> str:
        return f"{self.method} {self.ratio:.0f}×"

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row.update(size_bytes=self.size_bytes, accuracy=self.accuracy, label=self.label)
        return row


def _deep_compression() -> list[PublishedPoint]:
    """Han, Mao & Dally's final (Huffman-coded) points, from the stepper's PAPER figures."""
    return [
        PublishedPoint(
            "Deep Compression",
            "Han, Mao & Dally, ICLR 2016",
            paper.network,
            model,
            paper.ratios["huffman"],
            paper.error_after,
            "weights",
            paper.dense_bytes,
        )
        for model, paper in PAPER.items()
    ]


SWS = "Ullrich, Meeds & Welling, ICLR 2017"
EPR = "Oktay, Ballé, Singh & Shrivastava, ICLR 2020"
CHOI = "Choi, El-Khamy & Lee, ICLR 2017"

POINTS: tuple[PublishedPoint, ...] = (
    *_deep_compression(),
    PublishedPoint(
        "Soft weight-sharing",
        SWS,
        "LeNet-300-100",
        "mlp",
        64,
        1.94,
        "weights_as_dc",
        DENSE_BYTES["mlp"],
    ),
    PublishedPoint(
        "Soft weight-sharing",
        SWS,
        "LeNet-5-Caffe",
        "lenet5-caffe",
        162,
        0.97,
        "weights_as_dc",
        DENSE_BYTES["lenet5-caffe"],
    ),
    PublishedPoint(
        "EPR", EPR, "LeNet-300-100", "mlp", 124, 1.9, "weights_biases", DENSE_BYTES["mlp"], 8_560
    ),
    PublishedPoint(
        "EPR",
        EPR,
        "LeNet-5-Caffe",
        "lenet5-caffe",
        606,
        1.0,
        "weights_biases",
        DENSE_BYTES["lenet5-caffe"],
        2_840,
    ),
    # ECSQ after pruning; the paper's "LeNet" is taken as Caffe's LeNet-5, the network
    # Deep Compression reports. Its error is not recorded here, so it is listed, not drawn.
    PublishedPoint(
        "ECSQ", CHOI, "LeNet", "lenet5-caffe", 51, None, "unstated", DENSE_BYTES["lenet5-caffe"]
    ),
)


def published(model: str | None = None, exclude: tuple[str, ...] = ()) -> list[PublishedPoint]:
    """The published points, for one of our models (``"mlp"``) or all, minus some methods."""
    return [p for p in POINTS if (model is None or p.model == model) and p.method not in exclude]


def format_published(model: str | None = None) -> str:
    """The points as a text table for the CLI, each with what its ratio counts."""
    lines = [
        "published on MNIST (ratios count different bytes):",
        f"  {'method':<20}{'network':<15}{'ratio':>7}{'error':>8}{'bytes':>10}  counts",
    ]
    for p in published(model):
        error = f"{p.error:.2f} %" if p.error is not None else "—"
        lines.append(
            f"  {p.method:<20}{p.network:<15}{p.ratio:>6.0f}×{error:>8}{p.size_bytes:>10,.0f}"
            f"  {COUNTS[p.counts]} ({p.citation})"
        )
    return "\n".join(lines)

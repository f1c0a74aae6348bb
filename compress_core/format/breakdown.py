"""Where an artifact's bytes go: header, codes, index, codebooks/scales, untouched tensors.

The parts come from ``artifact_size``'s per-tensor rows, so they add up to the artifact's exact
length (tested). Unlike ``artifact.artifact_breakdown`` (which counts every float tensor as
one part), this splits the untouched tensors into weights and biases, as the Learn page
explains them. Compressed layers stored together in the artifact's shared block have no
bytes of their own: their rows carry the block's bytes split in proportion to what each
part takes coded alone, so the parts still sum to the file and the compressed layers
together to the block (``artifact._attribute``).

Example:
    >>> parts = bytes_by_component(compress(base, CompressionConfig(prune_rate=0.5, bits=4)))
    >>> sum(parts.values()) == artifact_size(model).artifact_bytes
    True
"""

from __future__ import annotations

from torch import nn

from .artifact import artifact_size

COMPONENTS = ("codes", "index", "codebooks", "float_weights", "biases", "header")


def bytes_by_component(model: nn.Module, *, coded: bool = True) -> dict[str, int]:
    """Bytes of each component, in ``COMPONENTS`` order; the values sum to the artifact size
    (of the fixed-width file with ``coded=False``, as in ``artifact.export``).

    - codes: the packed (or Huffman-coded) codes, or the float32 values, of pruned/quantized
      weights
    - index: where the kept weights are (bitmask or relative indexes)
    - codebooks: scales, zero points and k-means codebooks
    - float_weights: weights stored raw (layers left untouched, e.g. the first and last)
    - biases: biases, BatchNorm parameters and statistics, every other raw tensor
    - header: magic, version and the deflated JSON header
    """
    size = artifact_size(model, coded=coded)
    parts = dict.fromkeys(COMPONENTS, 0)
    parts["header"] = size.header_bytes
    for row in size.layers:
        if row["encoding"] == "raw":
            kind = "float_weights" if row["name"].endswith("weight") else "biases"
            parts[kind] += row["total_bytes"]
        else:
            parts["codes"] += row["value_bytes"]
            parts["index"] += row["index_bytes"]
            parts["codebooks"] += row["param_bytes"]
    return parts

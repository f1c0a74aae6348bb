"""The artifact against a plain lzma/zlib dump and the order-0 entropy bound (issue 14, part 1).

For every config of the grid (prune rates x bits x quantizers x granularity x scope) on
each model's cached baseline, it writes the
artifact and the plain dump a user would write (uint8/uint16 codes, packed bitmask, the
same scales/codebooks, the other tensors as float32, then lzma 9e or zlib 9, whichever is
smaller; ``compress_core.format.reference``) and reports: how often the artifact is larger
than the dump (whole file; compressed layers alone), the median and worst ratio of the
quantized layers' codes + indexes to their order-0 entropy bound, and every pair of
prune rates p < q at the same other settings where q's file is larger, saying whether
the index is to blame (it grew by at least as much as the file). Exits 1 when the artifact
is ever larger than the dump.

Run: python bench/bench_format.py [--quick] [--models lenet5,mlp] [--data fashion-mnist]
     [--out rows.csv]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from compress_core import CompressionConfig, compress  # noqa: E402
from compress_core.format.artifact import artifact_size  # noqa: E402
from compress_core.format.reference import entropy_bound_bytes, plain_dump_bytes  # noqa: E402
from compress_core.train.baseline import get_baseline  # noqa: E402

FULL = dict(
    rates=(0.0, 0.05, 0.5, 0.9, 1.0),
    bits=(1, 2, 3, 4, 6, 8, 16, 32),
    quants=("uniform", "symmetric", "kmeans", "ecq"),
    granularities=("per_tensor", "per_channel"),
    scopes=("layer",),
)
QUICK = dict(
    rates=(0.0, 0.05, 0.9),
    bits=(2, 4, 8),
    quants=("uniform", "kmeans"),
    granularities=("per_channel",),
    scopes=("layer",),
)


def configs(grid: dict) -> list[CompressionConfig]:
    """The grid, with the settings that cannot matter at 32 bits (quantizer) listed once."""
    out = {}
    for rate, bits, quant, gran, scope in itertools.product(*grid.values()):
        if bits == 32:
            quant, gran = "uniform", "per_channel"
        if rate == 0 and scope == "global":
            continue
        c = CompressionConfig(
            prune_rate=rate, bits=bits, quant=quant, granularity=gran, scope=scope
        )
        out[c.key()] = c
    return list(out.values())


def measure_row(model_name: str, base: torch.nn.Module, config: CompressionConfig) -> dict:
    small = compress(base, config)
    size = artifact_size(small)
    layers = [r for r in size.layers if r["index_encoding"]]  # entries of compressed layers
    coded = [r for r in layers if r["param_encoding"]]  # ... that are quantized
    dump = plain_dump_bytes(small)
    return {
        "model": model_name,
        "config": config.label(),
        "rate": config.prune_rate,
        "prune_method": config.prune_method,
        "bits": config.bits,
        "quant": config.quant,
        "granularity": config.granularity,
        "scope": config.scope,
        "artifact": size.artifact_bytes,
        "dump": dump["model"],
        "layers": sum(r["total_bytes"] for r in layers),
        "layers_dump": dump["layers"],
        "codes_index": sum(r["index_bytes"] + r["value_bytes"] for r in coded),
        "index": sum(r["index_bytes"] for r in layers),
        "index_encodings": " ".join(sorted({r["index_encoding"] for r in coded})),
        "bound": entropy_bound_bytes(small),
    }


PAIR_KEYS = ["model", "prune_method", "quant", "bits", "granularity", "scope"]


def pruning_pairs(df: pd.DataFrame) -> list[dict]:
    """Every pair of prune rates p < q at the same other settings where the file pruned to q
    is larger than the one pruned to p; ``index`` says whether the index is to blame (the
    index grew by at least as much as the file, so without it the file would not be larger).
    """
    out = []
    for _, g in df.groupby(PAIR_KEYS):
        for (_, a), (_, b) in itertools.combinations(g.sort_values("rate").iterrows(), 2):
            grew = b["artifact"] - a["artifact"]
            if b["rate"] > a["rate"] and grew > 0:
                index = b["index"] - a["index"] >= grew
                out.append(dict(low=a, high=b, grew=grew, index=index))
    return out


def pair_line(pair: dict) -> str:
    a, b = pair["low"], pair["high"]
    why = "the index" if pair["index"] else "not the index"
    return (
        f"{b['model']} {b['quant']} {b['bits']}-bit {b['granularity']} ({b['scope']}): "
        f"{a['rate']:.0%} -> {b['rate']:.0%}: {a['artifact']:,} B -> {b['artifact']:,} B "
        f"(+{pair['grew']:,}; index {a['index']:,} -> {b['index']:,} B: {why})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="an 18-config grid per model")
    ap.add_argument("--global-scope", action="store_true", help="add global pruning to the grid")
    ap.add_argument("--models", default="lenet5,mlp", help="comma-separated models")
    ap.add_argument("--data", default="fashion-mnist", help="the data set")
    ap.add_argument("--out", help="write every row to this CSV")
    args = ap.parse_args()
    grid = dict(QUICK if args.quick else FULL)
    if args.global_scope:
        grid["scopes"] = ("layer", "global")
    grid = configs(grid)
    started, rows = time.perf_counter(), []
    for model_name in args.models.split(","):
        base, _ = get_baseline(model_name, args.data)
        rows += [measure_row(model_name, base, c) for c in grid]
    df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, index=False)
    coded = df[df["bound"] > 0]
    ratio = coded["codes_index"] / coded["bound"]
    pairs = pruning_pairs(df)
    n_pairs = sum(
        len(g) * (len(g) - 1) // 2 for _, g in df.groupby(PAIR_KEYS)
    )  # rates are distinct within a group
    larger = int((df["artifact"] > df["dump"]).sum())
    larger_layers = int((df["layers"] > df["layers_dump"]).sum())
    seconds = time.perf_counter() - started
    print(f"{len(df)} configs ({args.models} on {args.data}), {seconds:.0f} s")
    print(f"artifact larger than the plain lzma/zlib dump: {larger} of {len(df)} (whole file)")
    print(f"compressed layers larger than their plain dump: {larger_layers} of {len(df)}")
    print(f"whole file, artifact / dump: median {statistics.median(df.artifact / df.dump):.3f}")
    print(f"codes + indexes / order-0 bound: median {ratio.median():.3f}, max {ratio.max():.3f}")
    blamed = sum(p["index"] for p in pairs)
    print(
        f"pairs p < q of prune rates at the same settings where q's file is larger: "
        f"{len(pairs)} of {n_pairs} ({blamed} because of the index)"
    )
    for pair in pairs:
        print("  " + pair_line(pair))
    return 1 if larger or larger_layers else 0


if __name__ == "__main__":
    sys.exit(main())

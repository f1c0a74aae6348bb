"""Command line: ``python -m compress_core run|sweep|models|datasets``.

Examples:
    python -m compress_core run --model lenet5 --data digits --prune 0.5 --bits 4
    python -m compress_core sweep --model lenet5 --data fashion-mnist --out results.csv
"""

from __future__ import annotations

import argparse
import json
import sys

from .config import (
    CALIBRATIONS,
    GRANULARITIES,
    PRUNE_METHODS,
    QUANT_METHODS,
    SCOPES,
    CompressionConfig,
)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers, got {text!r}"
        ) from None


def _add_common(p: argparse.ArgumentParser) -> None:
    from .data import DATASETS
    from .models import MODELS

    p.add_argument("--model", default="lenet5", choices=MODELS.names(), help="architecture")
    p.add_argument("--data", default="digits", choices=DATASETS.names(), help="data set")
    p.add_argument(
        "--data-dir",
        help="folder holding the data set (else $SLIMSCOPE_DATA, system folders, download)",
    )
    p.add_argument(
        "--cache-dir",
        help="where baselines are cached (default $SLIMSCOPE_CACHE or ~/.cache/slimscope)",
    )
    p.add_argument(
        "--epochs", type=int, help="baseline training epochs (default: per model and data set)"
    )
    p.add_argument("--seed", type=int, default=0, help="baseline training seed")
    p.add_argument("--subset", type=int, help="evaluate on a fixed subset of this many test images")
    p.add_argument("--method", default="magnitude", choices=PRUNE_METHODS, help="pruning method")
    p.add_argument(
        "--scope", default="layer", choices=SCOPES, help="rank weights per layer or globally"
    )
    p.add_argument("--quant", default="uniform", choices=QUANT_METHODS, help="quantizer")
    p.add_argument("--granularity", default="per_channel", choices=GRANULARITIES)
    p.add_argument("--act-bits", type=int, default=32, help="activation bits (32 = float)")
    p.add_argument("--act-calibration", default="minmax", choices=CALIBRATIONS)
    p.add_argument(
        "--all-layers", action="store_true", help="also compress the first and last layer"
    )
    p.add_argument("--huffman", action="store_true", help="Huffman-code the artifact")


def _common_config(args) -> dict:
    return dict(
        prune_method=args.method,
        scope=args.scope,
        quant=args.quant,
        granularity=args.granularity,
        act_bits=args.act_bits,
        act_calibration=args.act_calibration,
        skip_first_last=not args.all_layers,
        huffman=args.huffman,
    )


def _baseline(args):
    from .train import TrainProgress, get_baseline

    def show(p: TrainProgress) -> None:
        if p.step == p.steps:
            print(
                f"  epoch {p.epoch}/{p.epochs}  loss {p.loss:.4f}  acc {p.accuracy:.2%}",
                file=sys.stderr,
            )

    return get_baseline(
        args.model,
        args.data,
        epochs=args.epochs,
        seed=args.seed,
        cache_dir=args.cache_dir,
        data_dir=args.data_dir,
        progress=show,
    )


def cmd_run(args) -> int:
    from .api import calibration_batches, compress, evaluate_compressed
    from .artifact import export

    config = CompressionConfig(prune_rate=args.prune, bits=args.bits, **_common_config(args))
    base, data = _baseline(args)
    calib = calibration_batches(data) if config.act_bits != 32 else None
    compressed = compress(base, config, calib)
    result = evaluate_compressed(base, compressed, data, args.subset)
    if args.export:
        export(compressed, args.export)
    if args.json:
        out = result.to_dict()
        for k in ("changed", "changed_from", "changed_to"):
            out.pop(k)
        print(json.dumps(out, indent=2))
        return 0
    print(f"{result.model} on {result.dataset}: {result.label}")
    base = f"{result.baseline_accuracy:.2%}"
    print(f"  accuracy   {result.accuracy:.2%}  ({result.delta_pp:+.2f} pp vs {base})")
    print(f"  parameters {result.nonzero_params:,} non-zero of {result.total_params:,}")
    sizes = f"{result.artifact_bytes:,} artifact vs {result.dense_bytes:,} fp32"
    print(f"  bytes      {sizes} ({result.ratio:.1f}x smaller)")
    print(f"  flipped    {len(result.changed)} of {result.eval_images} test images")
    for w in result.warnings:
        print(f"  warning: {w}")
    if args.export:
        print(f"  artifact written to {args.export}")
    return 0


def cmd_sweep(args) -> int:
    import pandas as pd

    from .sweep import grid, sweep

    configs = grid(args.rates, args.bits, **_common_config(args))
    base, data = _baseline(args)

    def show(i, r):
        print(
            f"  [{i + 1}/{len(configs)}] {r.label:<34} acc {r.accuracy:.2%}  "
            f"{r.artifact_bytes:>10,} B",
            file=sys.stderr,
        )

    results = sweep(base, data, configs, args.subset, on_result=show)
    frame = pd.DataFrame([r.to_row() for r in results])
    if args.out:
        frame.to_csv(args.out, index=False)
        print(f"wrote {len(frame)} rows to {args.out}")
    else:
        print(frame.to_string(index=False))
    return 0


def cmd_list(args) -> int:
    from .data import available_datasets
    from .models import MODELS

    if args.command == "models":
        for name in MODELS:
            print(f"{name:<20} {MODELS[name].description}")
    else:
        for name, status in available_datasets().items():
            print(f"{name:<15} {'available' if status is True else status}")
    return 0


def parser() -> argparse.ArgumentParser:
    from .sweep import GRID_BITS, GRID_RATES

    p = argparse.ArgumentParser(
        prog="python -m compress_core",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="compress one configuration and print the result")
    _add_common(r)
    r.add_argument("--prune", type=float, default=0.0, help="pruning rate 0..1 (0.5 = 50 %%)")
    r.add_argument("--bits", type=int, default=32, help="weight bits 1..16, 32 = float")
    r.add_argument("--export", help="write the compressed artifact to this file")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("sweep", help="run a grid of pruning rates x bit widths")
    _add_common(s)
    s.add_argument("--rates", type=_floats, default=list(GRID_RATES), help="e.g. 0,0.5,0.9")
    s.add_argument("--bits", type=_ints, default=list(GRID_BITS), help="e.g. 2,4,8,32")
    s.add_argument("--out", help="write the results table as CSV")
    s.set_defaults(func=cmd_sweep)
    for name in ("models", "datasets"):
        sub.add_parser(name, help=f"list the {name}").set_defaults(func=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    from .api import CompressionError
    from .config import ConfigError
    from .data import DatasetUnavailable

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, CompressionError, DatasetUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

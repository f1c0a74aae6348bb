"""Command line: ``python -m compress_core run|sweep|models|datasets``.

Examples:
    python -m compress_core run --model lenet5 --data digits --prune 0.5 --bits 4
    python -m compress_core run --model lenet5 --prune 0.9 --bits 4 --finetune-epochs 3
    python -m compress_core deep-compression --model lenet5-caffe --data fashion-mnist
    python -m compress_core sweep --model lenet5 --data fashion-mnist --out results.csv
"""

from __future__ import annotations

import argparse
import json
import sys

from .core.config import (
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
    from .io.data import DATASETS
    from .io.models import MODELS

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
        "--all-layers",
        action="store_true",
        help="also compress a small first and last layer (kept by default)",
    )
    p.add_argument("--huffman", action="store_true", help="Huffman-code the artifact")
    _add_own(p)


def _add_own(p: argparse.ArgumentParser) -> None:
    own = p.add_argument_group("your own model and data")
    own.add_argument(
        "--model-file",
        help="compress these weights instead of training --model: a state_dict (.pt/.pth, "
        "read with weights_only=True) or .safetensors, for --model's architecture and --data",
    )
    own.add_argument(
        "--trust-model-file",
        action="store_true",
        help="also accept TorchScript and torch.export (.pt2) files. They carry code that runs "
        "when loaded (torch.jit.load has no safe mode): only for files you made or fully trust. "
        "Their weights go into --model's architecture, whose outputs must match the file's",
    )
    own.add_argument(
        "--model-module",
        action="append",
        default=[],
        metavar="[NAME=]PKG.MOD:ATTR",
        help="register an architecture from your own Python module (repeatable; also "
        "$SLIMSCOPE_MODEL_MODULES), then pick it with --model ATTR",
    )
    own.add_argument("--input-size", type=int, help="square input size the model file expects")
    own.add_argument(
        "--image-folder", help="use a folder of class subfolders (ImageFolder) instead of --data"
    )
    own.add_argument("--image-size", type=int, default=32, help="image folder: pixels per side")
    keep = p.add_argument_group("result history")
    keep.add_argument(
        "--store",
        metavar="FILE",
        help="SQLite history file (default $SLIMSCOPE_DATA_HOME/results.sqlite or "
        "~/.local/share/slimscope/results.sqlite); the dashboard's Compare page reads it",
    )
    keep.add_argument("--no-store", action="store_true", help="do not keep results in the history")


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


def _model_file(args):
    """(model, data) from the user's weights file, checked against --model on one batch."""
    from .io.data import load_dataset
    from .io.upload import LOCAL_MAX_BYTES, load_user_model

    shape = None
    if args.input_size:
        channels = load_dataset(args.data, data_dir=args.data_dir).in_shape[0]
        shape = (channels, args.input_size, args.input_size)
    model, data, report = load_user_model(
        args.model_file,
        args.model,
        args.data,
        shape,
        trust=args.trust_model_file,
        max_bytes=LOCAL_MAX_BYTES,
        data_dir=args.data_dir,
    )
    for line in report.checks:
        print(f"  ok: {line}", file=sys.stderr)
    for line in report.warnings:
        print(f"  warning: {line}", file=sys.stderr)
    args.identity = dict(report.identity(), source="cli")
    return model, data


def _remember(args, result, artifact: bytes | None = None) -> None:
    """Keep a result in the history, as the dashboard does; a storage problem only warns."""
    if args.no_store:
        return
    from .io.store import Store, StoreError

    identity = getattr(args, "identity", None)
    identity = identity or {"source": "cli", "epochs": args.epochs, "seed": args.seed}
    try:
        Store(args.store).save(result, args.subset, identity, artifact)
    except (StoreError, OSError) as e:
        print(f"warning: the result was not kept in the history: {e}", file=sys.stderr)


def _register_own(argv: list[str]) -> str | None:
    """Register --model-module architectures and an --image-folder before the parser lists
    the choices; returns the image folder's data set name."""
    from .io.imagefolder import register_image_folder
    from .io.upload import register_from_env, register_model_module

    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--model-module", action="append", default=[])
    pre.add_argument("--image-folder")
    pre.add_argument("--image-size", type=int, default=32)
    known, _ = pre.parse_known_args(argv)
    for problem in register_from_env():
        print(f"warning: {problem}", file=sys.stderr)
    for spec in known.model_module:
        register_model_module(spec)
    if known.image_folder is None:
        return None
    return register_image_folder(known.image_folder, known.image_size)


def _baseline(args):
    from .train.baseline import TrainProgress, get_baseline

    if args.model_file:
        return _model_file(args)

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
    from .core.pipeline import calibration_batches, evaluate_compressed
    from .eval.errors import calibration_batch, layer_errors, to_records
    from .format.artifact import export

    config = CompressionConfig(prune_rate=args.prune, bits=args.bits, **_common_config(args))
    base, data = _baseline(args)
    calib = calibration_batches(data) if config.act_bits != 32 else None
    compressed, ft = _compress_or_finetune(args, base, data, config, calib)
    result = evaluate_compressed(base, compressed, data, args.subset)
    if ft is not None:
        result.finetune, result.label = ft.to_dict(), f"{result.label} · {ft.label()}"
    _remember(args, result, export(compressed, args.export or None))
    errors = layer_errors(base, compressed, calibration_batch(data))
    if args.report:
        from .report import run_report, write

        write(args.report, run_report(args.lang, result, errors))
    if args.json:
        out = result.to_dict()
        for k in ("changed", "changed_from", "changed_to"):
            out.pop(k)
        out["layer_errors"] = to_records(errors)
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


def _show_finetune(p) -> None:
    if p.step == p.steps:
        print(
            f"  {p.stage} epoch {p.epoch}/{p.epochs}  loss {p.loss:.4f}  "
            f"val acc {p.val_accuracy:.2%}  sparsity {p.sparsity:.1%}",
            file=sys.stderr,
        )


def _compress_or_finetune(args, base, data, config, calib):
    """(compressed model, FinetuneConfig or None): one-shot unless training was asked for."""
    from .core.pipeline import compress
    from .train.finetune import FinetuneConfig, get_finetuned

    if not (args.finetune_epochs or args.qat_epochs):
        return compress(base, config, calib), None
    ft = FinetuneConfig(
        epochs=args.finetune_epochs,
        prune_steps=args.prune_steps,
        qat_epochs=args.qat_epochs,
        lr=args.lr,
        seed=args.seed,
    )
    return get_finetuned(base, data, config, ft, args.cache_dir, _show_finetune), ft


def _add_finetune(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("recovery (fine-tuning after compressing)")
    g.add_argument(
        "--finetune-epochs", type=int, default=0, help="retrain after pruning, mask held (0 = no)"
    )
    g.add_argument("--prune-steps", type=int, default=1, help="prune in this many steps")
    g.add_argument(
        "--qat-epochs", type=int, default=0, help="quantization-aware epochs (k-means: centroids)"
    )
    g.add_argument("--lr", type=float, default=5e-4, help="fine-tuning learning rate (Adam)")


def cmd_deep_compression(args) -> int:
    from .format.artifact import export
    from .train.deep_compression import format_report, get_deep_compression, preset

    names = ("prune_rate", "conv_bits", "fc_bits", "prune_steps", "prune_epochs")
    names += ("centroid_epochs", "lr", "centroid_lr")
    overrides = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    dc = preset(args.model, **overrides, seed=args.seed)
    base, data = _baseline(args)
    model, report = get_deep_compression(base, data, dc, args.cache_dir, _show_finetune)
    blob = export(model, args.export or None)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
        print(f"settings: {dc.label()}; artifact {len(blob):,} bytes")
    if args.export:
        print(f"artifact written to {args.export}", file=sys.stderr)
    return 0


def _add_deep_compression(sub) -> None:
    from .io.data import DATASETS
    from .io.models import MODELS

    d = sub.add_parser(
        "deep-compression",
        help="prune, retrain, k-means quantize, fine-tune centroids, Huffman (Han et al. 2016)",
    )
    d.add_argument("--model", default="mlp", choices=MODELS.names(), help="architecture")
    d.add_argument("--data", default="digits", choices=DATASETS.names(), help="data set")
    d.add_argument("--data-dir", help="folder holding the data set")
    d.add_argument("--cache-dir", help="where baselines and finished runs are cached")
    d.add_argument("--epochs", type=int, help="baseline training epochs")
    d.add_argument("--seed", type=int, default=0, help="baseline training and batch-order seed")
    d.add_argument("--prune", dest="prune_rate", type=float, help="share of weights removed")
    d.add_argument("--conv-bits", type=int, help="k-means bits of conv layers")
    d.add_argument("--fc-bits", type=int, help="k-means bits of fully connected layers")
    d.add_argument("--prune-steps", type=int, help="iterative pruning steps")
    d.add_argument("--prune-epochs", type=int, help="retraining epochs during and after pruning")
    d.add_argument("--centroid-epochs", type=int, help="centroid fine-tuning epochs")
    d.add_argument("--lr", type=float, help="retraining learning rate (Adam)")
    d.add_argument("--centroid-lr", type=float, help="centroid fine-tuning learning rate")
    d.add_argument("--export", help="write the final artifact to this file")
    d.add_argument("--json", action="store_true", help="print the stage report as JSON")
    d.set_defaults(func=cmd_deep_compression, model_file=None)


def cmd_sweep(args) -> int:
    import pandas as pd

    from .analysis.sweep import grid, sweep

    configs = grid(args.rates, args.bits, **_common_config(args))
    base, data = _baseline(args)

    def show(i, r):
        _remember(args, r)
        print(
            f"  [{i + 1}/{len(configs)}] {r.label:<34} acc {r.accuracy:.2%}  "
            f"{r.artifact_bytes:>10,} B",
            file=sys.stderr,
        )

    results = sweep(base, data, configs, args.subset, on_result=show)
    frame = pd.DataFrame([r.to_row() for r in results])
    if args.report:
        from .report import sweep_report, write

        common = CompressionConfig(**_common_config(args)).to_dict()
        write(args.report, sweep_report(args.lang, args.model, args.data, frame, common))
    if args.out:
        frame.to_csv(args.out, index=False)
        print(f"wrote {len(frame)} rows to {args.out}")
    else:
        print(frame.to_string(index=False))
    return 0


def cmd_sensitivity(args) -> int:
    import pandas as pd

    from .analysis.sensitivity import rank_layers, sensitivity

    common = CompressionConfig(**_common_config(args))
    base, data = _baseline(args)

    def show(i, total, p):
        setting = f"{p.prune_rate:.0%} pruned" if p.kind == "prune" else f"{p.bits}-bit"
        print(
            f"  [{i + 1}/{total}] {p.layer:<12} {setting:<12} {p.split} acc {p.accuracy:.2%} "
            f"({p.delta_pp:+.2f} pp)",
            file=sys.stderr,
        )

    layers = args.layers.split(",") if args.layers else None
    points = sensitivity(
        base, data, layers, args.rates, args.bits, common, args.split, args.subset, show
    )
    if args.out:
        pd.DataFrame([p.to_row() for p in points]).to_csv(args.out, index=False)
        print(f"wrote {len(points)} points to {args.out}")
    ranked = pd.DataFrame(rank_layers(points, args.tolerance))
    print(f"layers ranked by how much they take within {args.tolerance:g} pp ({args.split} split):")
    print(ranked.to_string(index=False))
    return 0


def cmd_budget(args) -> int:
    from .analysis.budget import OBJECTIVES, Budget, search
    from .format.artifact import export

    budget = Budget(args.min_accuracy, args.max_drop, args.minimise)
    common = CompressionConfig(**_common_config(args))
    base, data = _baseline(args)

    def show(p):
        print(f"  [{p.stage} {p.done}] {p.message}", file=sys.stderr)

    r = search(base, data, budget, common, args.rates, args.bits, args.subset, args.max_evals, show)
    if args.report:
        from .report import budget_report, write

        write(args.report, budget_report(args.lang, args.model, args.data, r))
    if args.json:
        print(json.dumps(r.to_dict(), indent=2))
        return 0 if r.met else 1
    goal = f"val accuracy >= {r.delta:.2%} (baseline {r.baseline_val_accuracy:.2%})"
    print(f"{args.model} on {args.data}: minimise {OBJECTIVES[args.minimise]} with {goal}")
    if not r.met:
        c = r.closest
        print(f"  no setting reaches it; the closest: {c.label}, val {c.val_accuracy:.2%}")
        return 1
    c, u = r.best, r.best_uniform
    print(f"  plan       {c.label}")
    print(f"  accuracy   val {c.val_accuracy:.2%}, test {r.test.accuracy:.2%}")
    print(f"  size       {c.artifact_bytes:,} B, {c.nonzero_params:,} non-zero parameters")
    if u is not None:
        print(f"  uniform    {u.label}: {u.artifact_bytes:,} B, {u.nonzero_params:,} non-zero")
    print(f"  baseline   {r.dense_bytes:,} B fp32, {r.baseline_params:,} parameters")
    print(f"  searched   {len(r.tried)} whole models in {r.seconds:.1f} s")
    if args.export:
        from .analysis.budget import build

        export(build(base, data, c, common), args.export)
        print(f"  artifact written to {args.export}")
    return 0


def cmd_list(args) -> int:
    from .io.data import available_datasets
    from .io.models import MODELS

    if args.command == "models":
        for name in MODELS:
            print(f"{name:<20} {MODELS[name].description}")
    else:
        for name, status in available_datasets().items():
            print(f"{name:<15} {'available' if status is True else status}")
    return 0


def _add_analysis(sub) -> None:
    """The sensitivity and budget subcommands."""
    from .analysis.budget import MAX_EVALS, OBJECTIVES
    from .analysis.sensitivity import SENS_BITS, SENS_RATES, SPLITS
    from .analysis.sweep import GRID_BITS, GRID_RATES

    a = sub.add_parser("sensitivity", help="accuracy as each layer alone is pruned or quantized")
    _add_common(a)
    a.add_argument("--rates", type=_floats, default=list(SENS_RATES), help="e.g. 0,0.5,0.9")
    a.add_argument("--bits", type=_ints, default=list(SENS_BITS), help="e.g. 2,4,8,32")
    a.add_argument("--layers", help="comma-separated layer names (default: the compressed ones)")
    a.add_argument("--split", default="val", choices=SPLITS, help="evaluate on this split")
    a.add_argument("--tolerance", type=float, default=1.0, help="pp drop allowed in the ranking")
    a.add_argument("--out", help="write every point as CSV")
    a.set_defaults(func=cmd_sensitivity)
    b = sub.add_parser("budget", help="the smallest per-layer plan keeping accuracy >= delta")
    _add_common(b)
    goal = b.add_mutually_exclusive_group(required=True)
    goal.add_argument("--min-accuracy", type=float, help="validation accuracy to keep, 0..1")
    goal.add_argument("--max-drop", type=float, help="or: at most this many pp below baseline")
    b.add_argument("--minimise", default="artifact_bytes", choices=list(OBJECTIVES))
    b.add_argument("--rates", type=_floats, default=list(GRID_RATES), help="rates a layer may take")
    b.add_argument("--bits", type=_ints, default=list(GRID_BITS), help="bit widths a layer takes")
    b.add_argument("--max-evals", type=int, default=MAX_EVALS, help="whole-model evaluations")
    b.add_argument("--export", help="write the chosen model's artifact to this file")
    b.add_argument("--json", action="store_true", help="print the answer as JSON")
    _add_report(b)
    b.set_defaults(func=cmd_budget)


def _add_report(p: argparse.ArgumentParser) -> None:
    from .catalog import LANGUAGES

    p.add_argument("--report", help="also write a self-contained HTML report to this file")
    p.add_argument("--lang", default="en", choices=list(LANGUAGES), help="the report's language")


def parser() -> argparse.ArgumentParser:
    from .analysis.sweep import GRID_BITS, GRID_RATES

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
    _add_finetune(r)
    _add_report(r)
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("sweep", help="run a grid of pruning rates x bit widths")
    _add_common(s)
    s.add_argument("--rates", type=_floats, default=list(GRID_RATES), help="e.g. 0,0.5,0.9")
    s.add_argument("--bits", type=_ints, default=list(GRID_BITS), help="e.g. 2,4,8,32")
    s.add_argument("--out", help="write the results table as CSV")
    _add_report(s)
    s.set_defaults(func=cmd_sweep)
    _add_analysis(sub)
    _add_deep_compression(sub)
    for name in ("models", "datasets"):
        listing = sub.add_parser(name, help=f"list the {name}")
        listing.add_argument("--model-module", action="append", default=[], help="see run")
        listing.set_defaults(func=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    from .core.config import ConfigError
    from .core.pipeline import CompressionError
    from .io.data import DatasetUnavailable
    from .io.upload import UploadError

    try:
        folder = _register_own(sys.argv[1:] if argv is None else argv)
        args = parser().parse_args(argv)
        if folder is not None:
            args.data = folder
        return args.func(args)
    except (ConfigError, CompressionError, DatasetUnavailable, UploadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

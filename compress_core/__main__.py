"""Command line: ``python -m compress_core run|sweep|models|datasets``.

Examples:
    python -m compress_core run --model lenet5 --data digits --prune 0.5 --bits 4
    python -m compress_core run --model lenet5 --prune 0.9 --bits 4 --finetune-epochs 3
    python -m compress_core run --model lenet5 --bits 8 --export-onnx m.onnx --latency
    python -m compress_core deep-compression --model lenet5-caffe --data fashion-mnist
    python -m compress_core deep-compression --model mlp --preset smaller --quant ecq
    python -m compress_core sweep --model lenet5 --data fashion-mnist --out results.csv
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from .core.config import (
    CALIBRATIONS,
    GRANULARITIES,
    PRUNE_METHODS,
    QUANT_METHODS,
    SCOPES,
    CompressionConfig,
)

MAX_EPOCHS = 1000  # more is a typo, not a plan: 10^30 epochs would never end
MAX_SEED = 2**32 - 1
MAX_INPUT_SIZE = 512  # pixels per side; 100000 would ask for terabytes


def _listed(kind: type, what: str):
    """An argparse type: a non-empty comma-separated list of finite numbers."""

    def parse(text: str) -> list:
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = None
        if not values or not all(math.isfinite(v) for v in values):
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
        return values

    return parse


_floats, _ints = _listed(float, "numbers"), _listed(int, "whole numbers")


def _whole(lo: int, hi: int):
    """An argparse type: a whole number from ``lo`` to ``hi``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected a whole number from {lo} to {hi:,}")
        return value

    return parse


def _finite(text: str) -> float:
    """An argparse type: a finite number (nan and inf are not tolerances or rates)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


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
        "--epochs",
        type=_whole(1, MAX_EPOCHS),
        help="baseline training epochs (default: per model and data set)",
    )
    p.add_argument("--seed", type=_whole(0, MAX_SEED), default=0, help="baseline training seed")
    p.add_argument(
        "--subset",
        type=_whole(1, 10**7),
        help="evaluate on a fixed subset of this many test images",
    )
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
    p.add_argument(
        "--huffman",
        action="store_true",
        help="legacy, changes nothing: the artifact always takes the smallest exact coding "
        "(fixed width, Huffman or ANS) of every stream",
    )
    p.add_argument(
        "--recalibrate-bn", action="store_true", help="re-estimate BatchNorm statistics afterwards"
    )
    p.add_argument(
        "--bias-correction", action="store_true", help="match each layer's mean output afterwards"
    )
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
    own.add_argument(
        "--input-size",
        type=_whole(1, MAX_INPUT_SIZE),
        help="square input size the model file expects",
    )
    own.add_argument(
        "--image-folder", help="use a folder of class subfolders (ImageFolder) instead of --data"
    )
    own.add_argument(
        "--image-size", type=_whole(1, MAX_INPUT_SIZE), default=32, help="image folder: pixels"
    )
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
        recalibrate_bn=args.recalibrate_bn,
        bias_correction=args.bias_correction,
    )


def _model_file(args):
    """(model, data) from the user's weights file, checked against --model on one batch."""
    from .io.data import load_dataset
    from .io.upload import LOCAL_MAX_BYTES, load_user_model

    shape = None
    if args.input_size is not None:
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


def _check_outputs(args) -> None:
    """Refuse an output path before any work starts: a folder, a device, a missing folder,
    an unwritable place, or the same file as the model file or the result store."""
    from .io.paths import OutputError, check_output, same_file
    from .io.store import default_path

    model_file = getattr(args, "model_file", None)
    store = None if getattr(args, "no_store", True) else (args.store or default_path())
    if store is not None and model_file is not None and same_file(store, model_file):
        raise OutputError(f"--store {store} is the --model-file itself: pick another store")
    inputs = {"--model-file": model_file, "--store": store}
    for flag in ("export", "out", "export_onnx", "export_onnx_int8", "report"):
        if getattr(args, flag, None):
            check_output(getattr(args, flag), "--" + flag.replace("_", "-"), inputs)


def _write(path: str | None, data: bytes) -> None:
    """Write an output file atomically (its mode kept), if one was asked for."""
    from .io.paths import write_atomic

    if path:
        write_atomic(path, data)


def _register_own(argv: list[str]) -> str | None:
    """Register --model-module architectures and an --image-folder before the parser lists
    the choices; returns the image folder's data set name."""
    from .io.imagefolder import register_image_folder
    from .io.upload import register_from_env, register_model_module

    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--model-module", action="append", default=[])
    pre.add_argument("--image-folder")
    pre.add_argument("--image-size", type=_whole(1, MAX_INPUT_SIZE), default=32)
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
    from .core.pipeline import calibration_for, evaluate_compressed
    from .eval.errors import calibration_batch, layer_errors, to_records
    from .format.artifact import export

    config = CompressionConfig(prune_rate=args.prune, bits=args.bits, **_common_config(args))
    base, data = _baseline(args)
    calib = calibration_for(data, config)
    compressed, ft = _compress_or_finetune(args, base, data, config, calib)
    result = evaluate_compressed(base, compressed, data, args.subset)
    if ft is not None:
        result.finetune, result.label = ft.to_dict(), f"{result.label} · {ft.label()}"
    blob = export(compressed)
    _write(args.export, blob)
    _remember(args, result, blob)
    latency = _ship(args, compressed, data)
    errors = layer_errors(base, compressed, calibration_batch(data))
    if args.report:
        from .report import run_report, write

        write(args.report, run_report(args.lang, result, errors))
    if args.json:
        out = result.to_dict()
        for k in ("changed", "changed_from", "changed_to"):
            out.pop(k)
        out["layer_errors"] = to_records(errors)
        print(json.dumps(dict(out, latency=latency) if latency else out, indent=2))
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
    if latency:
        from .eval.latency import format_latency

        print(format_latency(latency))
    return 0


def _add_ship(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ship it: ONNX files and measured latency")
    g.add_argument("--export-onnx", metavar="FILE", help="write the model as float32 ONNX")
    g.add_argument(
        "--export-onnx-int8",
        metavar="FILE",
        help="write it as int8 QDQ ONNX (ONNX Runtime static quantization, training images)",
    )
    g.add_argument(
        "--latency",
        action="store_true",
        help="measure ONNX Runtime (float, int8) and PyTorch latency at batch 1 and 256, "
        "1 thread and all cores, in a separate process",
    )


def _ship(args, compressed, data) -> list[dict]:
    """Write the ONNX files asked for; return latency rows when --latency was given."""
    from .core.pipeline import calibration_batches
    from .format.onnx import export_onnx

    calib = calibration_batches(data)
    for path, int8 in ((args.export_onnx, False), (args.export_onnx_int8, True)):
        if path:
            blob = export_onnx(compressed, int8=int8, calibration=calib)
            _write(path, blob)
            print(
                f"ONNX ({'int8' if int8 else 'float32'}) {len(blob):,} bytes: {path}",
                file=sys.stderr,
            )
    if not args.latency:
        return []
    from .eval.latency import measure_latency

    return measure_latency(compressed, calibration=calib)


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
    from .train.finetune import get_finetuned

    if not (args.finetune_epochs or args.qat_epochs):
        return compress(base, config, calib), None
    ft = _finetune_config(args)
    return get_finetuned(base, data, config, ft, args.cache_dir, _show_finetune), ft


def _finetune_config(args):
    from .train.finetune import FinetuneConfig

    return FinetuneConfig(
        epochs=args.finetune_epochs,
        prune_steps=args.prune_steps,
        qat_epochs=args.qat_epochs,
        lr=args.lr,
        seed=args.seed,
    )


def _add_finetune(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("recovery (fine-tuning after compressing)")
    g.add_argument(
        "--finetune-epochs",
        type=_whole(0, MAX_EPOCHS),
        default=0,
        help="retrain after pruning, mask held (0 = no)",
    )
    g.add_argument("--prune-steps", type=_whole(1, 100), default=1, help="prune in these steps")
    g.add_argument(
        "--qat-epochs",
        type=_whole(0, MAX_EPOCHS),
        default=0,
        help="quantization-aware epochs (k-means: centroids)",
    )
    g.add_argument("--lr", type=_finite, default=5e-4, help="fine-tuning learning rate (Adam)")


def cmd_deep_compression(args) -> int:
    from .format.artifact import export
    from .train.deep_compression import PRESET_KINDS, format_report, get_deep_compression
    from .train.papers import format_published

    names = ("prune_rate", "conv_bits", "fc_bits", "prune_steps", "prune_epochs")
    names += ("centroid_epochs", "lr", "centroid_lr", "quant")
    overrides = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    dc = PRESET_KINDS[args.preset](args.model, **overrides, seed=args.seed)  # before training
    base, data = _baseline(args)
    model, report = get_deep_compression(base, data, dc, args.cache_dir, _show_finetune)
    blob = export(model)
    _write(args.export, blob)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
        print(f"settings ({args.preset} preset): {dc.label()}; artifact {len(blob):,} bytes")
        print(format_published())
    if args.export:
        print(f"artifact written to {args.export}", file=sys.stderr)
    return 0


def _baseline_args(p) -> None:
    """The flags that pick and train a baseline, for subcommands that train further."""
    from .io.data import DATASETS
    from .io.models import MODELS

    p.add_argument("--model", default="mlp", choices=MODELS.names(), help="architecture")
    p.add_argument("--data", default="digits", choices=DATASETS.names(), help="data set")
    p.add_argument("--data-dir", help="folder holding the data set")
    p.add_argument("--cache-dir", help="where baselines and finished runs are cached")
    p.add_argument("--epochs", type=_whole(1, MAX_EPOCHS), help="baseline training epochs")
    p.add_argument(
        "--seed", type=_whole(0, MAX_SEED), default=0, help="baseline training and batch-order seed"
    )


def _add_deep_compression(sub) -> None:
    from .train.deep_compression import PRESET_KINDS, SMALLER

    d = sub.add_parser(
        "deep-compression",
        help="prune, retrain, k-means quantize, fine-tune centroids, Huffman (Han et al. 2016)",
    )
    _baseline_args(d)
    d.add_argument(
        "--preset",
        default="paper",
        choices=list(PRESET_KINDS),
        help="paper: Han et al.'s settings; smaller: tuned per-layer rates, 3-bit codes and "
        f"bfloat16 biases (for {', '.join(SMALLER)}). The flags below apply on top",
    )
    d.add_argument(
        "--prune",
        dest="prune_rate",
        type=float,
        help="share of weights removed (with --preset smaller: every layer, instead of its rates)",
    )
    d.add_argument("--conv-bits", type=int, help="bits of conv layers' codes")
    d.add_argument("--fc-bits", type=int, help="bits of fully connected layers' codes")
    d.add_argument(
        "--quant",
        choices=QUANT_METHODS,
        help="quantizer (default k-means, whose centroids are fine-tuned; others train with a "
        "straight-through estimator)",
    )
    d.add_argument("--prune-steps", type=_whole(1, 100), help="iterative pruning steps")
    epochs = _whole(0, MAX_EPOCHS)
    d.add_argument("--prune-epochs", type=epochs, help="retraining epochs while pruning")
    d.add_argument("--centroid-epochs", type=epochs, help="centroid fine-tuning epochs")
    d.add_argument("--lr", type=_finite, help="retraining learning rate (Adam)")
    d.add_argument("--centroid-lr", type=_finite, help="centroid fine-tuning learning rate")
    d.add_argument("--export", help="write the final artifact to this file")
    d.add_argument("--json", action="store_true", help="print the stage report as JSON")
    d.set_defaults(func=cmd_deep_compression, model_file=None)


def cmd_soft_sharing(args) -> int:
    from .eval.evaluate import evaluate
    from .format.artifact import artifact_breakdown, artifact_size, export
    from .train.soft_sharing import SoftSharingConfig, get_soft_sharing

    base, data = _baseline(args)
    cfg = SoftSharingConfig(epochs=args.sws_epochs, components=args.components, tau=args.tau)
    small = get_soft_sharing(base, data, cfg, args.cache_dir)  # trained once, then from disk
    size = artifact_size(small)
    out = {
        "accuracy": evaluate(small, data.test_x, data.test_y).accuracy,
        "baseline_accuracy": evaluate(base, data.test_x, data.test_y).accuracy,
        "artifact_bytes": size.artifact_bytes,
        "ratio": size.dense_bytes / size.artifact_bytes,
        "nonzero_params": size.nonzero_params,
        "breakdown": artifact_breakdown(small),
    }
    print(json.dumps(out, indent=2))
    if args.export:
        export(small, args.export)
    return 0


def _add_soft_sharing(sub) -> None:
    w = sub.add_parser("soft-sharing", help="train under a mixture prior (Ullrich et al. 2017)")
    _baseline_args(w)
    w.add_argument("--sws-epochs", type=int, default=4, help="epochs under the prior")
    w.add_argument("--components", type=int, default=15, help="non-zero mixture components")
    w.add_argument("--tau", type=float, default=3e-3, help="weight of the prior")
    w.add_argument("--export", help="write the artifact to this file")
    w.set_defaults(func=cmd_soft_sharing, model_file=None)


def cmd_sweep(args) -> int:
    import pandas as pd

    from .analysis.sweep import grid, sweep
    from .train.finetune import finetune_sweep

    configs = grid(args.rates, args.bits, **_common_config(args))

    def show(i, r):
        _remember(args, r)
        print(
            f"  [{i + 1}/{len(configs)}] {r.label:<34} acc {r.accuracy:.2%}  "
            f"{r.artifact_bytes:>10,} B",
            file=sys.stderr,
        )

    with _executor(args) as ex:  # an unreachable cluster fails before any training
        base, data = _baseline(args)
        if args.finetune_epochs or args.qat_epochs:
            ft = _finetune_config(args)
            results = finetune_sweep(
                base, data, configs, ft, args.subset, args.cache_dir, show, None, ex
            )
        else:
            results = sweep(base, data, configs, args.subset, on_result=show, executor=ex)
    frame = pd.DataFrame([r.to_row() for r in results])
    if args.report:
        from .report import sweep_report, write

        common = CompressionConfig(**_common_config(args)).to_dict()
        write(args.report, sweep_report(args.lang, args.model, args.data, frame, common))
    if args.out:
        _write(args.out, frame.to_csv(index=False).encode())
        print(f"wrote {len(frame)} rows to {args.out}")
    else:
        print(frame.to_string(index=False))
    return 0


def _add_executor(p: argparse.ArgumentParser) -> None:
    from .analysis.executors import ENV_ADDRESS, ENV_KIND, KINDS

    g = p.add_argument_group("where the points run")
    g.add_argument(
        "--executor",
        choices=KINDS,
        help=f"this process (default; or ${ENV_KIND}), a local process pool, or a Ray cluster",
    )
    g.add_argument("--workers", type=int, help="processes / a local Ray cluster's CPUs")
    g.add_argument(
        "--address",
        help=f"Ray cluster to join: auto, host:6379 or ray://host:10001 (or ${ENV_ADDRESS}); "
        "without it --executor ray starts a local cluster",
    )
    g.add_argument(
        "--fallback", action="store_true", help="run here when the cluster cannot be reached"
    )


def _executor(args):
    """The executor the flags (else the SLIMSCOPE_* environment) ask for; says where on stderr."""
    from .analysis.executors import ExecutorConfig, describe, make_executor

    env = ExecutorConfig.from_env()
    kind = args.executor or ("ray" if args.address else env.kind)
    config = ExecutorConfig(
        kind,
        args.workers or env.workers,
        (args.address or env.address) if kind == "ray" else None,
        args.fallback or env.fallback,
    )
    ex = make_executor(config)
    print(f"running {describe(ex)}", file=sys.stderr)
    return ex


def cmd_sensitivity(args) -> int:
    import pandas as pd

    from .analysis.sensitivity import rank_layers, sensitivity

    common = CompressionConfig(**_common_config(args))

    def show(i, total, p):
        setting = f"{p.prune_rate:.0%} pruned" if p.kind == "prune" else f"{p.bits}-bit"
        print(
            f"  [{i + 1}/{total}] {p.layer:<12} {setting:<12} {p.split} acc {p.accuracy:.2%} "
            f"({p.delta_pp:+.2f} pp)",
            file=sys.stderr,
        )

    layers = args.layers.split(",") if args.layers else None
    with _executor(args) as ex:
        base, data = _baseline(args)
        grid = (args.rates, args.bits, common)
        points = sensitivity(base, data, layers, *grid, args.split, args.subset, show, executor=ex)
    if args.out:
        _write(args.out, pd.DataFrame([p.to_row() for p in points]).to_csv(index=False).encode())
        print(f"wrote {len(points)} points to {args.out}")
    ranked = pd.DataFrame(rank_layers(points, args.tolerance))
    print(f"layers ranked by how much they take within {args.tolerance:g} pp ({args.split} split):")
    print(ranked.to_string(index=False))
    return 0


def cmd_budget(args) -> int:
    from .analysis.budget import OBJECTIVES, Budget, finetuned_plan, search
    from .core.config import ConfigError
    from .core.pipeline import evaluate_compressed
    from .format.artifact import export

    budget = Budget(args.min_accuracy, args.max_drop, args.minimise)
    common = CompressionConfig(**_common_config(args))

    def show(p):
        print(f"  [{p.stage} {p.done}] {p.message}", file=sys.stderr)

    ft = _finetune_config(args) if args.finetune_epochs or args.qat_epochs else None
    if ft is not None and ft.prune_steps > 1:  # before any work
        raise ConfigError("a plan's masks are fixed: fine-tune it with --prune-steps 1")
    with _executor(args) as ex:
        base, data = _baseline(args)
        grid = (args.rates, args.bits, args.subset, args.max_evals)
        r = search(base, data, budget, common, *grid, show, executor=ex)
    chosen, tuned_model, tuned = r.chosen, None, None
    if ft is not None and chosen is not None:
        tuned_model = finetuned_plan(base, data, chosen.plan, common, ft, _show_finetune)
        tuned = evaluate_compressed(base, tuned_model, data)  # all test images, as r.test
        tuned.finetune = ft.to_dict()
    if args.report:
        from .report import budget_report, write

        write(args.report, budget_report(args.lang, args.model, args.data, r))
    if args.export and r.met:
        from .analysis.budget import build

        model = tuned_model if tuned_model is not None else build(base, data, chosen, common)
        _write(args.export, export(model))
        done = " (fine-tuned)" if tuned is not None else ""
        print(f"  artifact written to {args.export}{done}", file=sys.stderr)
    if args.json:
        answer = r.to_dict()
        if tuned is not None:
            answer["finetuned"] = tuned.to_row()
        print(json.dumps(answer, indent=2))
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
    n = r.counts()
    print(
        f"  searched   {n.built} whole models in {r.seconds:.1f} s ({n.grid} on the uniform grid, "
        f"{n.used} of the {n.allowed} evaluations allowed after it), {n.met} meet delta"
    )
    if tuned is not None:
        gain = 100 * (tuned.accuracy - r.test.accuracy)
        print(
            f"  fine-tuned {ft.label()}: test {r.test.accuracy:.2%} -> {tuned.accuracy:.2%} "
            f"({gain:+.2f} pp), {c.artifact_bytes:,} -> {tuned.artifact_bytes:,} B"
        )
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
    a.add_argument("--tolerance", type=_finite, default=1.0, help="pp drop allowed in ranking")
    a.add_argument("--out", help="write every point as CSV")
    _add_executor(a)
    a.set_defaults(func=cmd_sensitivity)
    b = sub.add_parser("budget", help="the smallest per-layer plan keeping accuracy >= delta")
    _add_common(b)
    goal = b.add_mutually_exclusive_group(required=True)
    goal.add_argument("--min-accuracy", type=_finite, help="validation accuracy to keep, 0..1")
    goal.add_argument("--max-drop", type=_finite, help="or: at most this many pp below baseline")
    b.add_argument("--minimise", default="artifact_bytes", choices=list(OBJECTIVES))
    b.add_argument("--rates", type=_floats, default=list(GRID_RATES), help="rates a layer may take")
    b.add_argument("--bits", type=_ints, default=list(GRID_BITS), help="bit widths a layer takes")
    b.add_argument(
        "--max-evals",
        type=_whole(1, 100_000),
        default=MAX_EVALS,
        help="whole-model evaluations allowed after the uniform grid (greedy and refine)",
    )
    b.add_argument("--export", help="write the chosen model's artifact to this file")
    b.add_argument("--json", action="store_true", help="print the answer as JSON")
    _add_finetune(b)  # --finetune-epochs N: then fine-tune the chosen plan, masks held
    _add_executor(b)
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
    _add_ship(r)
    _add_report(r)
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("sweep", help="run a grid of pruning rates x bit widths")
    _add_common(s)
    s.add_argument("--rates", type=_floats, default=list(GRID_RATES), help="e.g. 0,0.5,0.9")
    s.add_argument("--bits", type=_ints, default=list(GRID_BITS), help="e.g. 2,4,8,32")
    s.add_argument("--out", help="write the results table as CSV")
    _add_finetune(s)
    _add_executor(s)
    _add_report(s)
    s.set_defaults(func=cmd_sweep)
    _add_analysis(sub)
    _add_deep_compression(sub)
    _add_soft_sharing(sub)
    for name in ("models", "datasets"):
        listing = sub.add_parser(name, help=f"list the {name}")
        listing.add_argument("--model-module", action="append", default=[], help="see run")
        listing.set_defaults(func=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    from .core.config import ConfigError
    from .core.pipeline import CompressionError
    from .eval.latency import LatencyError
    from .format.onnx import OnnxExportError
    from .io.data import DatasetUnavailable
    from .io.paths import OutputError
    from .io.upload import UploadError

    try:
        folder = _register_own(sys.argv[1:] if argv is None else argv)
        args = parser().parse_args(argv)
        if folder is not None:
            args.data = folder
        _check_outputs(args)
        return args.func(args)
    except (
        ConfigError,
        CompressionError,
        DatasetUnavailable,
        UploadError,
        OutputError,
        OnnxExportError,
        LatencyError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a disk that filled up or went away mid-write: said, not traced
        print(f"error: {e.filename or ''} {e.strerror or e}".strip(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

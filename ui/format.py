"""Small display helpers."""


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (powers of 1000, as file managers show)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} GB"


def result_columns() -> dict:
    """Human names, units and percentages for result tables (one meaning per label)."""
    import streamlit as st

    from .i18n import t

    number, text = st.column_config.NumberColumn, st.column_config.TextColumn
    check = st.column_config.CheckboxColumn
    names = {c: t(f"rcol.{c}") for c in RESULT_COLUMNS}
    return {
        "model": text(names["model"]),
        "dataset": text(names["dataset"]),
        "label": text(names["label"]),
        "prune_rate": number(names["prune_rate"], format="percent"),
        "prune_method": text(names["prune_method"]),
        "scope": text(names["scope"]),
        "bits": number(names["bits"]),
        "quant": text(names["quant"]),
        "granularity": text(names["granularity"]),
        "act_bits": number(names["act_bits"]),
        "act_calibration": text(names["act_calibration"]),
        "skip_first_last": check(names["skip_first_last"]),
        "accuracy": number(names["accuracy"], format="percent"),
        "delta_pp": number(names["delta_pp"], format="%+.2f"),
        "loss": number(names["loss"], format="%.3f"),
        "total_params": number(names["total_params"], format="localized"),
        "nonzero_params": number(names["nonzero_params"], format="localized"),
        "artifact_bytes": number(names["artifact_bytes"], format="localized"),
        "dense_bytes": number(names["dense_bytes"], format="localized"),
        "ratio": number(names["ratio"], format="%.1f×"),
        "finetuned": text(names["finetuned"]),
        "finite": check(names["finite"]),
        "eval_images": number(names["eval_images"], format="localized"),
        "seconds": number(names["seconds"], format="%.2f"),
        "created": st.column_config.DatetimeColumn(names["created"]),
        "source": text(names["source"]),
        "base_hash": text(names["base_hash"]),
        "has_artifact": check(names["has_artifact"]),
        "front_bytes": check(names["front_bytes"]),
        "front_params": check(names["front_params"]),
        "huffman": None,  # legacy: changes no bytes (stored rows still have it)
        "include": None,
        "exclude": None,
        "seed": None,
    }


RESULT_COLUMNS = (
    "model dataset label prune_rate prune_method scope bits quant granularity act_bits "
    "act_calibration skip_first_last accuracy delta_pp loss total_params nonzero_params "
    "artifact_bytes dense_bytes ratio finetuned finite eval_images seconds created source "
    "base_hash has_artifact front_bytes front_params"
).split()


def layer_columns() -> dict:
    """The Layers tab's column names in the session's language."""
    import streamlit as st

    from .i18n import t

    number = st.column_config.NumberColumn
    return {
        "layer": t("layers.layer"),
        "type": t("layers.type"),
        "shape": t("layers.shape"),
        "params": number(t("layers.params"), format="localized"),
        "nonzero": number(t("layers.nonzero"), format="localized"),
        "sparsity": st.column_config.ProgressColumn(
            t("layers.sparsity"), format="percent", min_value=0, max_value=1
        ),
        "bits": number(t("layers.bits")),
        "bytes": number(t("layers.bytes"), format="localized"),
        "encoding": t("layers.encoding"),
        "skipped": t("layers.skipped"),
    }


def table(frame, spec: dict):
    """``frame`` ready for ``st.dataframe``: (its codes as words, the column config).

    ``spec`` is one of ``compress_core.columns``' (PLAN, TRIED, SENSITIVITY, RESULT):
    the HTML report names and formats the same columns the same way; columns outside
    it are left out, the others keep the spec's order.
    """
    import streamlit as st

    from compress_core import columns

    from .i18n import lang, t

    number = st.column_config.NumberColumn
    kinds = {
        "percent": lambda name: number(name, format="percent"),
        "accuracy": lambda name: number(name, format="percent"),
        "pp": lambda name: number(name, format=t("num.pp", value="%+.2f")),
        "count": lambda name: number(name, format="localized"),
        "bytes": lambda name: number(name, format="localized"),
        "bits": lambda name: number(name, format="%d"),
        "ratio": lambda name: number(name, format="%.1f×"),
        "yesno": st.column_config.CheckboxColumn,
    }
    text = st.column_config.TextColumn
    shown = [c for c in spec if c in frame]
    config = {c: kinds.get(spec[c][1], text)(t(spec[c][0])) for c in shown}
    return columns.words(lang(), frame, spec)[shown], config

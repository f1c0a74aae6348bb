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

    number, text = st.column_config.NumberColumn, st.column_config.TextColumn
    return {
        "model": text("Model"),
        "dataset": text("Data set"),
        "label": text("Setting"),
        "prune_rate": number("Pruning rate", format="percent"),
        "prune_method": text("Pruning method"),
        "scope": text("Ranking"),
        "bits": number("Weight bits (32 = float)"),
        "quant": text("Quantizer"),
        "granularity": text("Granularity"),
        "act_bits": number("Activation bits (32 = float)"),
        "act_calibration": text("Calibration"),
        "skip_first_last": st.column_config.CheckboxColumn("Small first/last kept"),
        "huffman": st.column_config.CheckboxColumn("Huffman"),
        "accuracy": number("Test accuracy", format="percent"),
        "delta_pp": number("Change in accuracy (pp)", format="%+.2f"),
        "loss": number("Test loss", format="%.3f"),
        "total_params": number("Stored parameters", format="localized"),
        "nonzero_params": number("Non-zero parameters", format="localized"),
        "artifact_bytes": number("Compressed size (bytes)", format="localized"),
        "dense_bytes": number("fp32 size (bytes)", format="localized"),
        "ratio": number("Compression ratio", format="%.1f×"),
        "finetuned": text("Fine-tuning"),
        "finite": st.column_config.CheckboxColumn("Finite outputs"),
        "eval_images": number("Test images", format="localized"),
        "seconds": number("Time (s)", format="%.2f"),
        "created": st.column_config.DatetimeColumn("Computed at"),
        "source": text("Where from"),
        "base_hash": text("Base model id"),
        "has_artifact": st.column_config.CheckboxColumn("File kept"),
        "front_bytes": st.column_config.CheckboxColumn("On the bytes front"),
        "front_params": st.column_config.CheckboxColumn("On the parameters front"),
        "include": None,
        "exclude": None,
        "seed": None,
    }

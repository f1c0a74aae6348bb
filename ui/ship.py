"""Ship it: ONNX downloads, measured latency, and accuracy against latency for Pareto points.

Everything here is measured on demand (a button), never on a slider move, and
cached in ``ui/cache.py`` by (model, config, runtimes, batches, threads).
Pages call ``latency_metric``, ``render_ship_panel`` and ``latency_tradeoff``.
"""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st

from compress_core.analysis.pareto import pareto_mask
from compress_core.core.config import CompressionConfig
from compress_core.eval.latency import RUNTIMES, LatencyError, all_cores, cpu_info
from compress_core.format.onnx import OnnxExportError, int8_applies
from ui import cache, charts
from ui.i18n import t
from ui.safe import plain

FULL = (RUNTIMES, (1, 256), tuple(sorted({1, all_cores()})))  # runtimes, batches, threads
HEADLINE = dict(runtime="onnx", batch=1, threads=1)  # the number on Explore's metric row
RUNTIME_NAMES = {
    "onnx": "ONNX Runtime float32",
    "onnx-int8": "ONNX Runtime int8",
    "torch": "PyTorch",
}
POINT_SETTINGS = {  # what the latency axis of the Pareto plots measures
    "ONNX float32, batch 1, 1 thread": ("onnx", 1, 1),
    "ONNX float32, batch 256, 1 thread": ("onnx", 256, 1),
    "ONNX int8, batch 256, 1 thread": ("onnx-int8", 256, 1),
}


def why_line() -> str:
    """The one-line explanation, with what this CPU has for int8."""
    flags = ", ".join(cpu_info()["int8_flags"]) or t("ship.no_flags")
    return t("ship.why", flags=flags)


def _measured(p, config_key: str, setting=FULL) -> list[dict] | None:
    """The cached rows when this config was measured this session, else None."""
    if (p.args, config_key, setting) not in st.session_state.setdefault("ship_measured", set()):
        return None
    return cache.latency(*p.args, config_key, *setting)


def _measure(p, config_key: str, setting=FULL) -> list[dict] | None:
    """Measure (or fetch from the cache); a failure is shown, never raised."""
    try:
        rows = cache.latency(*p.args, config_key, *setting)
    except (LatencyError, OnnxExportError) as e:
        st.error(t("ship.failed", error=plain(e)))
        return None
    st.session_state.setdefault("ship_measured", set()).add((p.args, config_key, setting))
    return rows


def _pick(rows: list[dict], runtime: str, batch: int, threads: int) -> dict | None:
    match = [
        r for r in rows if (r["runtime"], r["batch"], r["threads"]) == (runtime, batch, threads)
    ]
    return match[0] if match else None


def latency_metric(p, config: CompressionConfig, column=None) -> None:
    """Explore's latency metric: a button until measured, then median with delta to baseline."""
    column = column or st
    key, base_key = config.key(), CompressionConfig().key()
    rows, base = _measured(p, key), _measured(p, base_key)
    if rows is None or base is None:
        if column.button(
            t("ship.measure"),
            key="ship_measure_metric",
            help=t("ship.measure_help"),
        ):
            with st.spinner(t("ship.measuring")):
                rows, base = _measure(p, key), _measure(p, base_key)
        if rows is None or base is None:
            return
    now, ref = _pick(rows, **HEADLINE), _pick(base, **HEADLINE)
    column.metric(
        t("ship.metric"),
        t("ship.us", value=f"{1000 * now['median_ms']:,.0f}"),
        t("num.percent", value=f"{100 * (now['median_ms'] / ref['median_ms'] - 1):+.0f}"),
        delta_color="inverse",
        help=t(
            "ship.metric_help",
            runs=now["runs"],
            iqr=f"{1000 * now['iqr_ms']:,.0f}",
            base=f"{1000 * ref['median_ms']:,.0f}",
        )
        + " "
        + why_line(),
    )


def latency_table(rows: list[dict]) -> pd.DataFrame:
    """Latency rows as a table, with speed-up against ONNX float32 at the same batch/threads."""
    df = pd.DataFrame(rows)
    ref = df[df["runtime"] == "onnx"].set_index(["batch", "threads"])["median_ms"]
    df["speed-up vs ONNX float"] = [
        ref.get((b, t), float("nan")) / m
        for b, t, m in zip(df["batch"], df["threads"], df["median_ms"], strict=True)
    ]
    df["runtime"] = df["runtime"].map(RUNTIME_NAMES)
    return df[
        ["runtime", "batch", "threads", "median_ms", "iqr_ms", "speed-up vs ONNX float", "runs"]
    ]


def render_ship_panel(p, config: CompressionConfig, r) -> None:
    """ONNX downloads (float32, and int8 where bits <= 8) and the full latency table."""
    key = config.key()
    files = [("float32", False, t("ship.float_help"))]
    if int8_applies(config):
        files.append(("int8 QDQ", True, t("ship.int8_help")))
    for column, (kind, int8, why) in zip(st.columns(2), files, strict=False):
        column.download_button(
            t("ship.download", kind=kind),
            functools.partial(cache.onnx_file, *p.args, key, int8),
            f"{r.model}-{r.dataset}{'-int8' if int8 else ''}.onnx",
            "application/octet-stream",
            key=f"ship_dl_{'int8' if int8 else 'float'}",
            help=why,
            on_click="ignore",
        )
    if len(files) == 1:
        st.caption(t("ship.int8_when"))
    cpu = cpu_info()
    cpu_line = t("ship.cpu", model=cpu["model"], arch=cpu["arch"], cores=cpu["cores"])
    st.caption(cpu_line + " " + why_line())
    rows = _measured(p, key)
    if rows is None and st.button(t("ship.measure_setting"), key="ship_measure_table"):
        with st.spinner(t("ship.measuring")):
            rows = _measure(p, key)
    if rows is not None:
        st.dataframe(
            latency_table(rows),
            hide_index=True,
            key="ship_table",
            column_config={
                "median_ms": st.column_config.NumberColumn(t("ship.col_median"), format="%.3f"),
                "iqr_ms": st.column_config.NumberColumn(t("ship.col_iqr"), format="%.3f"),
                "speed-up vs ONNX float": st.column_config.NumberColumn(
                    t("ship.col_speedup"), format="%.2f×"
                ),
            },
        )


def latency_tradeoff(frame: pd.DataFrame, p, key: str) -> None:
    """Accuracy against measured latency, for the Pareto points (by bytes) of ``frame`` only."""
    if not len(frame):
        return
    df = frame[(frame["model"] == p.model) & (frame["dataset"] == p.dataset)]
    df = df[~df["finetuned"]] if "finetuned" in df else df
    if not len(df):
        return
    front = df[pareto_mask(df, "artifact_bytes", "accuracy")].drop_duplicates("key")
    a, b = st.columns([2, 1])
    label = a.selectbox(t("ship.latency_of"), list(POINT_SETTINGS), key=f"{key}_latency_setting")
    runtime, batch, threads = POINT_SETTINGS[label]
    setting = ((runtime,), (batch,), (threads,))
    measured = {k: _measured(p, k, setting) for k in front["key"]}
    todo = [k for k, rows in measured.items() if rows is None]
    b.write("")  # align the button with the select box
    if todo and b.button(t("ship.measure_points", n=len(todo)), key=f"{key}_latency_measure"):
        bar = st.progress(0.0, text=t("ship.measuring_short"))
        for i, k in enumerate(todo):
            measured[k] = _measure(p, k, setting)
            bar.progress((i + 1) / len(todo), text=t("ship.measured", i=i + 1, n=len(todo)))
        bar.empty()
    done = front[[measured[k] is not None for k in front["key"]]].copy()
    if not len(done):
        st.caption(t("ship.on_demand", n=len(front)))
        return
    done["latency_ms"] = [measured[k][0]["median_ms"] for k in done["key"]]
    st.plotly_chart(charts.tradeoff_figure(done, "latency_ms"), key=f"{key}_latency_plot")
    st.caption(t("ship.median_of", label=label) + " " + why_line())

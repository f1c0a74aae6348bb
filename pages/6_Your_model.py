"""Your model: upload the weights of a known architecture, check them, then compress them.

Only weights are accepted (a ``state_dict`` in .pt/.pth, read with
``weights_only=True``, or .safetensors), for an architecture the server knows:
the registry's or one the operator registered at start-up
(``SLIMSCOPE_MODEL_MODULES``). Nothing in an upload is ever run as code.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from compress_core.core.config import ConfigError
from compress_core.core.pipeline import CompressionError
from compress_core.io.data import DATASETS, DatasetUnavailable, load_dataset
from compress_core.io.imagefolder import list_image_folders
from compress_core.io.models import MODELS, input_size_for
from compress_core.io.upload import (
    MAX_RESIZED_BYTES,
    MAX_UPLOAD_BYTES,
    SAFE_EXTENSIONS,
    SAVE_WEIGHTS_HOWTO,
    UploadError,
    max_input_size,
)
from ui import cache, controls, i18n, metrics, pick
from ui.format import human_bytes, layer_columns
from ui.i18n import number, percent, t
from ui.safe import plain

st.set_page_config(page_title="Slimscope · Your model", page_icon="✂️", layout="wide")

BUILT_IN, FOLDER = "a built-in data set", "an image folder on this server"  # the radio's values


def pick_data() -> str:
    """The data set the model was trained on: a built-in one, or an allowed image folder."""
    folders = list_image_folders()
    kind = BUILT_IN
    if folders:  # the operator allowed image folders ($SLIMSCOPE_IMAGE_FOLDERS)
        kind = st.radio(
            t("byo.trained_on"),
            [BUILT_IN, FOLDER],
            key="byo_kind",
            horizontal=True,
            format_func=lambda k: t("byo.kind_builtin" if k == BUILT_IN else "byo.kind_folder"),
        )
    if kind == BUILT_IN:
        names = [n for n in DATASETS.names() if not n.startswith("folder:")]
        return st.selectbox(t("pick.dataset"), names, key="byo_dataset")
    folder = st.selectbox(t("byo.folder"), folders, key="byo_folder", format_func=lambda p: p.name)
    size = st.number_input(t("byo.folder_size"), 8, 256, 32, key="byo_folder_size")
    return cache.image_folder(str(folder), int(size))


def pick_shape(arch: str, dataset: str) -> tuple[int, int, int]:
    native = load_dataset(dataset)
    c, size = native.in_shape[0], input_size_for(arch, native.in_shape[1])
    cap = max_input_size(dataset, arch)
    left, right = st.columns(2)
    combo = f"{arch}|{dataset}"  # a new pick starts from its own defaults
    channels = left.number_input(
        t("byo.channels"),
        1,
        4,
        c,
        key=f"byo_channels|{combo}",
        help=t("byo.channels_help", data=dataset, c=c),
    )
    side = right.number_input(
        t("byo.side"),
        MODELS[arch].min_size,
        max(cap, MODELS[arch].min_size),
        min(size, cap),
        key=f"byo_size|{combo}",
        help=t("byo.side_help")
        + " "
        + t("byo.side_cap", cap=cap, data=dataset, mib=MAX_RESIZED_BYTES >> 20),
    )
    return (int(channels), int(side), int(side))


def show_report(report) -> None:
    st.success(
        t(
            "byo.fits",
            file=plain(report.filename),
            arch=report.architecture,
            data=report.dataset,
            params=number(report.params),
            size=human_bytes(report.nbytes),
            sha=report.sha256[:12],
        )
    )
    with st.expander(t("byo.checked")):
        for line in report.checks:
            st.text("✓ " + line)
    for w in report.warnings:
        st.warning(plain(w), icon="⚠️")


def show_result(r) -> None:
    metrics.show(r)
    st.caption(t("byo.score", acc=percent(r.baseline_accuracy, 2), n=number(r.eval_images)))
    layers = pd.DataFrame(r.layers)
    skipped = layers[layers["skipped"] != ""] if "skipped" in layers else layers.iloc[:0]
    if len(skipped):
        kept = t("list.sep").join(f"{row.layer} ({row.skipped})" for row in skipped.itertuples())
        st.info(t("byo.left_alone", layers=kept))
    st.dataframe(layers, hide_index=True, key="byo_layers", column_config=layer_columns())


def main() -> None:
    i18n.language_picker()
    st.title(t("nav.Your_model"))
    st.caption(t("byo.caption"))
    for problem in cache.MODEL_MODULE_PROBLEMS:
        st.warning(t("byo.module_problem", problem=plain(problem)))
    arch = st.selectbox(
        t("byo.arch"),
        MODELS.names(),
        index=MODELS.names().index("lenet5") if "lenet5" in MODELS else 0,
        key="byo_arch",
        format_func=pick.model_label,
        help=t("byo.arch_help"),
    )
    try:
        dataset = pick_data()
        shape = pick_shape(arch, dataset)
    except (DatasetUnavailable, UploadError) as e:
        st.error(plain(e))
        st.stop()
    upload = st.file_uploader(
        t("byo.weights"),
        key="byo_file",  # no type=: the extension is checked below, with a clear message
        help=t("byo.weights_help", ext=", ".join(SAFE_EXTENSIONS), mib=MAX_UPLOAD_BYTES >> 20),
    )
    if upload is None:
        st.info(t("byo.howto", howto=SAVE_WEIGHTS_HOWTO))
        st.stop()
    if upload.size > MAX_UPLOAD_BYTES:  # before reading a byte of it
        size = f"{upload.size / 2**20:.1f}"
        st.error(
            t("byo.too_big", file=plain(upload.name, 80), size=size, mib=MAX_UPLOAD_BYTES >> 20)
        )
        st.stop()
    blob = upload.getvalue()
    args = (hashlib.sha256(blob).hexdigest(), upload.name, arch, dataset, shape)
    try:
        _, _, report = cache.user_model(*args, _blob=blob)
    except (UploadError, DatasetUnavailable) as e:
        st.error(plain(e))
        st.stop()
    show_report(report)
    try:
        config = controls.controls()
        r = cache.user_result(*args, config.key(), None, _blob=blob)
    except (ConfigError, CompressionError) as e:
        st.error(t("explore.cannot_apply", error=plain(e)))
        st.stop()
    show_result(r)
    if not r.finite:
        st.error(t("byo.not_finite"))
        st.stop()
    st.download_button(
        t("export.artifact", size=human_bytes(r.artifact_bytes)),
        cache.user_artifact(*args, config.key(), _blob=blob),
        f"{arch}-{dataset.replace(':', '-')}.slim",
        "application/octet-stream",
        key="byo_download",
        help=t("byo.download_help"),
        on_click="ignore",  # no rerun: the served file stays while it downloads
    )
    for problem in cache.STORE_PROBLEMS:
        st.caption(t("byo.not_saved", problem=problem))


main()

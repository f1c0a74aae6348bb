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
    MAX_UPLOAD_BYTES,
    SAFE_EXTENSIONS,
    SAVE_WEIGHTS_HOWTO,
    UploadError,
)
from ui import cache, controls, i18n, metrics
from ui.format import human_bytes

st.set_page_config(page_title="Slimscope · Your model", page_icon="✂️", layout="wide")

BUILT_IN, FOLDER = "a built-in data set", "an image folder on this server"
HOW_TO = f"""
**What to upload:** the weights only. {SAVE_WEIGHTS_HOWTO}.
A training checkpoint holding a `model_state_dict` works too.

Whole pickled models, TorchScript and `torch.export` (`.pt2`) files carry code and are refused
here. On your own machine the CLI can read them:
`python -m compress_core run --model lenet5 --model-file net.pt2 --trust-model-file`.

Your own architecture: the operator starts the server with
`SLIMSCOPE_MODEL_MODULES=mypkg.nets:MyNet`; it then appears in the list above.
"""


def pick_data() -> str:
    """The data set the model was trained on: a built-in one, or an allowed image folder."""
    folders = list_image_folders()
    kind = BUILT_IN
    if folders:  # the operator allowed image folders ($SLIMSCOPE_IMAGE_FOLDERS)
        kind = st.radio("Trained on", [BUILT_IN, FOLDER], key="byo_kind", horizontal=True)
    if kind == BUILT_IN:
        names = [n for n in DATASETS.names() if not n.startswith("folder:")]
        return st.selectbox("Data set", names, key="byo_dataset")
    folder = st.selectbox("Image folder", folders, key="byo_folder", format_func=lambda p: p.name)
    size = st.number_input("Image size (pixels)", 8, 256, 32, key="byo_folder_size")
    return cache.image_folder(str(folder), int(size))


def pick_shape(arch: str, dataset: str) -> tuple[int, int, int]:
    native = load_dataset(dataset)
    c, size = native.in_shape[0], input_size_for(arch, native.in_shape[1])
    left, right = st.columns(2)
    combo = f"{arch}|{dataset}"  # a new pick starts from its own defaults
    channels = left.number_input(
        "Input channels",
        1,
        4,
        c,
        key=f"byo_channels|{combo}",
        help=f"{dataset} images have {c} channel(s).",
    )
    side = right.number_input(
        "Input size (pixels, square)",
        MODELS[arch].min_size,
        512,
        size,
        key=f"byo_size|{combo}",
        help="The height and width the model was trained at; images are resized to it.",
    )
    return (int(channels), int(side), int(side))


def show_report(report) -> None:
    st.success(
        f"**{report.filename}** fits **{report.architecture}** for {report.dataset} "
        f"({report.params:,} parameters, {human_bytes(report.nbytes)}, "
        f"sha256 {report.sha256[:12]}…)."
    )
    with st.expander("What was checked"):
        for line in report.checks:
            st.write(f"✓ {line}")
    for w in report.warnings:
        st.warning(w, icon="⚠️")


def show_result(r) -> None:
    metrics.show(r)
    st.caption(f"Your weights score {r.baseline_accuracy:.2%} on {r.eval_images:,} test images.")
    layers = pd.DataFrame(r.layers)
    skipped = layers[layers["skipped"] != ""] if "skipped" in layers else layers.iloc[:0]
    if len(skipped):
        st.info(
            "Left alone: "
            + "; ".join(f"{row.layer} ({row.skipped})" for row in skipped.itertuples())
        )
    st.dataframe(layers, hide_index=True, key="byo_layers")


def main() -> None:
    i18n.language_picker()
    st.title("Your model")
    st.caption("Upload weights you trained; see how far they compress before they stop working.")
    for problem in cache.MODEL_MODULE_PROBLEMS:
        st.warning(f"An operator architecture was not registered: {problem}")
    arch = st.selectbox(
        "Architecture",
        MODELS.names(),
        index=MODELS.names().index("lenet5") if "lenet5" in MODELS else 0,
        key="byo_arch",
        format_func=lambda n: f"{n} — {MODELS[n].description}",
        help="The network your weights belong to. Only architectures the server knows.",
    )
    try:
        dataset = pick_data()
        shape = pick_shape(arch, dataset)
    except DatasetUnavailable as e:
        st.error(f"{e}")
        st.stop()
    upload = st.file_uploader(
        "Weights",
        key="byo_file",  # no type=: the extension is checked below, with a clear message
        help=f"A state_dict ({', '.join(SAFE_EXTENSIONS)}), at most "
        f"{MAX_UPLOAD_BYTES >> 20} MiB. It is read as data, never run.",
    )
    if upload is None:
        st.info(HOW_TO)
        st.stop()
    if upload.size > MAX_UPLOAD_BYTES:  # before reading a byte of it
        st.error(
            f"{upload.name} is {upload.size / 2**20:.1f} MiB; the limit is "
            f"{MAX_UPLOAD_BYTES >> 20} MiB. Run the CLI on your own machine for bigger models."
        )
        st.stop()
    blob = upload.getvalue()
    args = (hashlib.sha256(blob).hexdigest(), upload.name, arch, dataset, shape)
    try:
        _, _, report = cache.user_model(*args, _blob=blob)
    except (UploadError, DatasetUnavailable) as e:
        st.error(f"{e}")
        st.stop()
    show_report(report)
    try:
        config = controls.controls()
        r = cache.user_result(*args, config.key(), None, _blob=blob)
    except (ConfigError, CompressionError) as e:
        st.error(f"This setting cannot be applied: {e}")
        st.stop()
    show_result(r)
    if not r.finite:
        st.error("The compressed model outputs NaN/Inf: it is reported here, never plotted.")
        st.stop()
    st.download_button(
        f"Download the compressed model ({human_bytes(r.artifact_bytes)})",
        cache.user_artifact(*args, config.key(), _blob=blob),
        f"{arch}-{dataset.replace(':', '-')}.slim",
        "application/octet-stream",
        key="byo_download",
        help="Read it back with compress_core.format.artifact.load_compressed(path). "
        "It is also kept on the Compare page.",
    )
    for problem in cache.STORE_PROBLEMS:
        st.caption(f"History not saved: {problem}")


main()

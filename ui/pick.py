"""The sidebar every page shares: data set, model, training budget; and loading the baseline."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from compress_core.io.data import DATASETS, DatasetUnavailable
from compress_core.io.models import MODELS
from compress_core.train.baseline import TrainProgress, default_epochs
from ui.safe import plain

from . import cache

PREVIEW_SIZES = {"all test images": None, "2,000 (fast preview)": 2000, "500": 500}
DEFAULTS = {
    "pick_dataset": "digits",
    "pick_model": "lenet5",
    "pick_epochs": 0,
    "pick_subset": "all test images",
}


@dataclass(frozen=True)
class Pick:
    model: str
    dataset: str
    epochs: int | None  # None = the model's default for this data set
    seed: int
    subset: int | None

    @property
    def args(self) -> tuple:
        return (self.model, self.dataset, self.epochs, self.seed)


def sidebar() -> Pick:
    """Render the shared picker; its values survive switching pages."""
    for key, default in DEFAULTS.items():
        # Re-assigning keeps a widget's value alive on pages that do not render it.
        st.session_state[key] = st.session_state.get(key, default)
    with st.sidebar:
        st.header("Model")
        dataset = st.selectbox(
            "Data set",
            DATASETS.names(),
            key="pick_dataset",
            help="digits ships with scikit-learn and always works offline. The others load "
            "from a folder you name (SLIMSCOPE_DATA), the system's data folders, or a download.",
        )
        model = st.selectbox(
            "Model",
            MODELS.names(),
            key="pick_model",
            format_func=lambda n: f"{n} — {MODELS[n].description}",
            help="The architecture to train once and then compress.",
        )
        epochs = st.number_input(
            "Training epochs (0 = default)",
            0,
            200,
            key="pick_epochs",
            help=f"Epochs for the baseline; the default for this pick is "
            f"{default_epochs(model, dataset)}. Each setting is trained once and cached on disk.",
        )
        subset = st.selectbox(
            "Evaluate on",
            list(PREVIEW_SIZES),
            key="pick_subset",
            help="A fixed subset makes big test sets faster; numbers are then previews.",
        )
    return Pick(model, dataset, int(epochs) or None, 0, PREVIEW_SIZES[subset])


def load_baseline(pick: Pick):
    """The cached (base, data) for a pick, training it with a progress bar if needed.

    Shows a clear error and stops the page when the data set is missing.
    """
    box = st.status(f"Preparing {pick.model} on {pick.dataset} …", expanded=False)
    bar = box.progress(0.0)

    def progress(p: TrainProgress) -> None:
        done = ((p.epoch - 1) + p.step / max(p.steps, 1)) / max(p.epochs, 1)
        bar.progress(
            min(done, 1.0),
            text=f"training epoch {p.epoch}/{p.epochs} · "
            f"loss {p.loss:.3f} · train accuracy {p.accuracy:.1%}",
        )

    try:
        # outside_cache: a cache hit must not replay calls on this page's progress bar.
        base, data = cache.baseline(*pick.args, _progress=cache.outside_cache(progress))
    except DatasetUnavailable as e:
        box.update(label="Data set not available", state="error")
        st.error(
            f"{plain(e)}\n\nMeanwhile, pick **digits** in the sidebar: it always works offline."
        )
        st.stop()
    meta = getattr(base, "slimscope_baseline_meta", {}) or {}
    acc = meta.get("test_accuracy")
    label = f"Baseline {pick.model} on {pick.dataset}"
    if acc is not None:
        label += f": {acc:.2%} test accuracy"
    box.update(label=label, state="complete")
    return base, data

"""The sidebar every page shares: data set, model, training budget; and loading the baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass

import streamlit as st

from compress_core.io.data import DATASETS, DatasetUnavailable
from compress_core.io.models import MODELS
from compress_core.train.baseline import TrainProgress, default_epochs

from . import cache, view

SUBSET_LABELS = {0: "all test images", 2000: "2,000 (fast preview)", 500: "500"}


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
    """Render the shared picker from the view (so it survives switching pages)."""
    view.show_problems()  # when a page runs on its own (tests); the app shows them first
    with st.sidebar:
        st.header("Model")
        dataset = st.selectbox(
            "Data set",
            DATASETS.names(),
            key=view.seed("pick_dataset", view.get("dataset")),
            help="digits ships with scikit-learn and always works offline; the others need "
            "their files on the server (the operators note in the README says where).",
        )
        model = st.selectbox(
            "Model",
            MODELS.names(),
            key=view.seed("pick_model", view.get("model")),
            format_func=lambda n: f"{n} — {MODELS[n].description}",
            help="The architecture to train once and then compress.",
        )
        epochs = st.number_input(
            "Training epochs (0 = default)",
            0,
            200,
            key=view.seed("pick_epochs", view.get("epochs")),
            help=f"Epochs for the baseline; the default for this pick is "
            f"{default_epochs(model, dataset)}. Each setting is trained once and cached on disk.",
        )
        subset = st.selectbox(
            "Test images",
            view.SUBSETS,
            key=view.seed("pick_subset", view.get("subset")),
            format_func=SUBSET_LABELS.get,
            help="How many test images the accuracy is measured on. A fixed subset makes big "
            "test sets faster; numbers are then previews.",
        )
    picked = {"dataset": dataset, "model": model, "epochs": int(epochs), "subset": subset}
    for name, value in picked.items():
        view.put(name, value)
    return Pick(model, dataset, int(epochs) or None, 0, subset or None)


def load_baseline(pick: Pick, slot=None):
    """The cached (base, data) for a pick, training it first when needed.

    Training is shown in ``slot`` (an ``st.empty()`` that holds the page's body, so the
    previous model's numbers are replaced, not greyed): what is trained, a progress bar
    with epoch, loss and time left. A missing data set goes back to the previous one.
    """
    slot = slot if slot is not None else st.empty()
    shown = {}

    def progress(p: TrainProgress) -> None:
        if not shown:
            box = slot.container()
            box.info(
                f"Training {pick.model} on {pick.dataset}… This happens once per model, "
                "data set and epoch count; afterwards it loads from the cache in a second."
            )
            shown.update(bar=box.progress(0.0), start=time.monotonic())
        done = min(((p.epoch - 1) + p.step / max(p.steps, 1)) / max(p.epochs, 1), 1.0)
        elapsed = time.monotonic() - shown["start"]
        left = f"about {elapsed / done - elapsed:.0f} s left" if done > 0.02 else "estimating…"
        shown["bar"].progress(done, text=f"epoch {p.epoch}/{p.epochs} · loss {p.loss:.3f} · {left}")

    try:
        # outside_cache: a cache hit must not replay calls on this page's progress bar.
        base, data = cache.baseline(*pick.args, _progress=cache.outside_cache(progress))
    except DatasetUnavailable as e:
        view.dataset_missing(
            f"The data set {pick.dataset} is not available on this server; pick another one "
            f"in the sidebar. For the operators: {e}",
            "pick_dataset",
        )
    view.dataset_loaded(pick.dataset)
    slot.empty()
    return base, data


def baseline_caption(pick: Pick, base) -> str:
    """'Baseline lenet5 on digits: 97.50% test accuracy'."""
    acc = (getattr(base, "slimscope_baseline_meta", {}) or {}).get("test_accuracy")
    return f"Baseline {pick.model} on {pick.dataset}" + (
        f": {acc:.2%} test accuracy" if acc is not None else ""
    )

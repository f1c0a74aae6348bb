"""The sidebar every page shares: data set, model, training budget; and loading the baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass

import streamlit as st

from compress_core.io.data import DATASETS, DatasetUnavailable
from compress_core.io.models import MODELS
from compress_core.train.baseline import TrainProgress, default_epochs

from . import cache, view
from .i18n import number, percent, t


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
        st.header(t("pick.header"))
        dataset = st.selectbox(
            t("pick.dataset"),
            DATASETS.names(),
            key=view.seed("pick_dataset", view.get("dataset")),
            help=t("pick.dataset_help"),
        )
        model = st.selectbox(
            t("pick.model"),
            MODELS.names(),
            key=view.seed("pick_model", view.get("model")),
            format_func=model_label,
            help=t("pick.model_help"),
        )
        epochs = st.number_input(
            t("pick.epochs"),
            0,
            200,
            key=view.seed("pick_epochs", view.get("epochs")),
            help=t("pick.epochs_help", default=default_epochs(model, dataset)),
        )
        subset = st.selectbox(
            t("pick.subset"),
            view.SUBSETS,
            key=view.seed("pick_subset", view.get("subset")),
            format_func=subset_label,
            help=t("pick.subset_help"),
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
            box.info(t("pick.training", model=pick.model, data=pick.dataset))
            shown.update(bar=box.progress(0.0), start=time.monotonic())
        done = min(((p.epoch - 1) + p.step / max(p.steps, 1)) / max(p.epochs, 1), 1.0)
        elapsed = time.monotonic() - shown["start"]
        left = t("pick.left", s=f"{elapsed / done - elapsed:.0f}") if done > 0.02 else t("pick.eta")
        text = t("pick.epoch", epoch=p.epoch, epochs=p.epochs, loss=f"{p.loss:.3f}", left=left)
        shown["bar"].progress(done, text=text)

    try:
        # outside_cache: a cache hit must not replay calls on this page's progress bar.
        base, data = cache.baseline(*pick.args, _progress=cache.outside_cache(progress))
    except DatasetUnavailable as e:
        view.dataset_missing(t("pick.missing", data=pick.dataset, error=e), "pick_dataset")
    view.dataset_loaded(pick.dataset)
    if shown:
        # Only after training: emptying the slot on every run would make the browser drop
        # and rebuild the whole page body (every chart) on each slider move.
        slot.empty()
    return base, data


def baseline_caption(pick: Pick, base) -> str:
    """'Baseline lenet5 on digits: 97.50% test accuracy'."""
    acc = (getattr(base, "slimscope_baseline_meta", {}) or {}).get("test_accuracy")
    if acc is None:
        return t("pick.baseline", model=pick.model, data=pick.dataset)
    return t("pick.baseline_acc", model=pick.model, data=pick.dataset, acc=percent(acc, 2))


def model_label(name: str) -> str:
    """'lenet5 — LeNet-5 …': the registry's name and its description (the model's own text)."""
    return f"{name} — {MODELS[name].description}"


def subset_label(subset: int) -> str:
    """0 -> 'all test images', 2000 -> '2,000 (fast preview)'."""
    if subset == 0:
        return t("pick.subset_all")
    return t("pick.subset_preview", n=number(subset)) if subset >= 2000 else number(subset)

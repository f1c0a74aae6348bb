"""Long page actions (training): a progress bar, and a Stop button only while one runs.

Recovery and Budget both fine-tune models, and Recovery trains soft weight-sharing;
this is the one runner they share.
Stop reruns the page, which interrupts the job at its next progress update; the
engine keeps a run (disk or cache) only once it has finished, so nothing is kept.
"""

from __future__ import annotations

import streamlit as st

from compress_core.train.baseline import TrainingCancelled
from compress_core.train.finetune import FinetuneProgress
from compress_core.train.loop import TrainProgress
from ui.i18n import percent, t

STOPPED = "job_stopped"  # session key: a Stop was pressed, say so once on the next run


def _stopped() -> None:
    st.session_state[STOPPED] = True


def stopped_note() -> None:
    """Once after a Stop: say that nothing half-trained was kept."""
    if st.session_state.pop(STOPPED, False):
        st.info(t("rec.stopped_note"))


def progress_text(p: FinetuneProgress) -> str:
    """'retraining · epoch 1/2 · loss 0.312 · train accuracy 91% · sparsity 90%', translated."""
    text = t(
        "rec.progress",
        stage=t(f"rec.phase_{p.stage}"),
        epoch=p.epoch,
        epochs=p.epochs,
        loss=f"{p.loss:.3f}",
        acc=percent(p.accuracy),
        sparsity=percent(p.sparsity, 0),
    )
    if p.val_accuracy is not None:
        text += t("rec.progress_val", acc=percent(p.val_accuracy))
    return text


def train_progress_text(p: TrainProgress) -> str:
    """'training under the prior · epoch 1/4 · loss 0.312 · train accuracy 91%', translated."""
    return t(
        "sws.progress",
        epoch=p.epoch,
        epochs=p.epochs,
        loss=f"{p.loss:.3f}",
        acc=percent(p.accuracy),
    )


def _bar(p: FinetuneProgress | TrainProgress) -> tuple[float, str]:
    """(share of the run done, the bar's text) of either kind of progress."""
    if isinstance(p, TrainProgress):  # one training run: its steps are the whole job
        return (p.index + 1) / max(p.total, 1), train_progress_text(p)
    return p.fraction, progress_text(p)


def run_job(label: str, job, key: str) -> bool:
    """Run ``job(show)`` under a progress bar with a Stop button; False when it was stopped.

    ``show(progress)`` takes a ``FinetuneProgress`` (recovery runs) or a
    ``TrainProgress`` (one plain training run). The Stop button (``{key}_stop``)
    is drawn only while the job runs and removed when it ends, however it ends.
    """
    stop = st.empty()  # only while the job runs
    stop.button(t("rec.stop"), key=f"{key}_stop", on_click=_stopped, help=t("rec.stop_help"))
    box = st.status(label, expanded=True)
    bar = box.progress(0.0)

    def show(p: FinetuneProgress | TrainProgress) -> None:
        fraction, text = _bar(p)
        bar.progress(min(max(fraction, 0.0), 1.0), text=text)

    try:
        job(show)
    except TrainingCancelled as e:
        box.update(label=t("rec.stopped", error=e), state="error")
        return False
    finally:
        stop.empty()
    box.update(label=t("rec.done", label=label), state="complete", expanded=False)
    return True

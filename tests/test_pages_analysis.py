"""The Sweep, Sensitivity and Budget pages, run in-process with AppTest on the real engine."""

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import ui.cache
from compress_core import CompressionConfig, run_on
from compress_core.analysis.pareto import pareto_mask
from compress_core.analysis.sweep import method_grid
from compress_core.catalog import text
from ui.format import human_bytes

TIMEOUT = 300  # the first run may train the digits baseline
PAGES = Path(__file__).resolve().parent.parent / "pages"
PICK = ("lenet5", "digits", None, 0)  # the sidebar's defaults


def page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / name), default_timeout=TIMEOUT)


@pytest.mark.parametrize("name", ["1_Sweep.py", "2_Sensitivity.py", "3_Budget.py"])
def test_each_page_opens_without_error_and_asks_for_a_run(digits_lenet, name):
    at = page(name).run()
    assert not at.exception
    assert any("press" in i.value for i in at.info)


def _sweep_table(at):
    return next(d.value for d in at.dataframe)


def test_sweep_runs_the_grid_flags_the_front_and_reruns_from_the_cache(digits_lenet, monkeypatch):
    at = page("1_Sweep.py").run()
    at.multiselect(key="sweep_rates").set_value([0, 50, 90])
    at.multiselect(key="sweep_bits").set_value([4, 32])
    at.multiselect(key="sweep_methods").set_value(["magnitude", "random"])
    at.button(key="sweep_submit").click().run()
    assert not at.exception and not at.warning
    expected = method_grid((0.0, 0.5, 0.9), (4, 32), ("magnitude", "random"), ("uniform",))
    table = _sweep_table(at)
    assert len(table) == len(expected) == 10
    assert table["front_bytes"].tolist() == pareto_mask(table, "artifact_bytes").tolist()
    assert table["front_params"].tolist() == pareto_mask(table, "nonzero_params").tolist()
    assert next(m.value for m in at.metric if m.label == "Points") == "10 of 10"
    assert len(at.get("plotly_chart")) == 3  # bytes, parameters, heatmap
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == [text("en", "run.csv"), text("en", "report.download")]  # CSV, HTML report
    # The numbers are the engine's: one point recomputed directly.
    base, data = digits_lenet
    row = table[(table["prune_method"] == "random") & (table["prune_rate"] == 0.5)].iloc[0]
    direct = run_on(base, data, CompressionConfig(prune_rate=0.5, bits=4, prune_method="random"))
    assert row["accuracy"] == direct.accuracy and row["artifact_bytes"] == direct.artifact_bytes

    evaluated = []
    real = ui.cache.evaluate_compressed
    monkeypatch.setattr(
        ui.cache, "evaluate_compressed", lambda *a, **k: evaluated.append(1) or real(*a, **k)
    )
    at.button(key="sweep_submit").click().run()
    assert not at.exception and evaluated == []  # every point came from the cache
    assert _sweep_table(at)["accuracy"].tolist() == table["accuracy"].tolist()


def test_a_stopped_sweep_keeps_its_finished_points(digits_lenet):
    base, data = digits_lenet
    configs = method_grid((0.0, 0.7), (4,))
    done = run_on(base, data, configs[0])
    at = page("1_Sweep.py")
    at.session_state["sweep_points"] = {(*PICK, None, configs[0].key()): done.to_row()}
    at.session_state["sweep_job"] = {
        "pick": (*PICK, None),
        "keys": [c.key() for c in configs],
        "finished": False,
    }
    at.run()
    assert not at.exception
    assert any("Stopped: 1 of 2" in w.value for w in at.warning)
    assert _sweep_table(at)["label"].tolist() == [done.label]


def test_sensitivity_page_plots_each_layer_and_ranks_them(digits_lenet):
    at = page("2_Sensitivity.py").run()
    at.multiselect(key="sens_layers").set_value(["conv2", "fc1"])
    at.multiselect(key="sens_rates").set_value([0, 90])
    at.multiselect(key="sens_bits").set_value([2, 32])
    at.button(key="sens_submit").click().run()
    assert not at.exception
    points = list(at.session_state["sens_points"].values())
    assert len(points) == 2 * (2 + 2)
    for p in points:
        if p.prune_rate == 0 and p.bits == 32:
            assert p.accuracy == p.baseline_accuracy
    ranked = next(d.value for d in at.dataframe)
    assert sorted(ranked["layer"]) == ["conv2", "fc1"] and list(ranked.index) == [1, 2]
    assert len(at.get("plotly_chart")) == 2


def test_budget_page_finds_a_plan_and_says_when_delta_cannot_be_met(digits_lenet):
    at = page("3_Budget.py").run()
    at.multiselect(key="budget_rates").set_value([0, 50, 90])
    at.multiselect(key="budget_bits").set_value([2, 4, 32])
    at.slider(key="budget_evals").set_value(10)
    at.button(key="budget_submit").click().run()
    assert not at.exception and not at.error
    assert any("Smallest model found" in s.value for s in at.success)
    assert not [b for b in at.button if b.label == "Stop"]  # the search is done: no Stop
    uniform = next(i.value for i in at.info if "Best uniform setting meeting δ" in i.value)
    saved = float(re.search(r"\*\*(-?[\d.]+)%\*\* smaller", uniform).group(1))
    assert saved >= 0.0  # never larger than the best uniform setting
    plan = next(d.value for d in at.dataframe)
    assert plan["layer"].tolist() == ["conv1", "conv2", "fc1", "fc2", "fc3"]  # every layer
    searched = plan[plan["searched"]]["layer"].tolist()
    assert searched == ["conv2", "fc1", "fc2"]  # first and last kept intact
    intact = plan[~plan["searched"]]
    assert (intact["prune_rate"] == 0).all() and (intact["bits"] == 32).all()
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels[-1] == text("en", "report.download")  # after the model's download
    _check_budget_counts(at)

    at.radio(key="budget_goal").set_value("absolute")
    at.number_input(key="budget_abs").set_value(100.0)
    at.button(key="budget_submit").click().run()
    assert not at.exception
    assert any("No setting reaches" in e.value and "closest" in e.value for e in at.error)


def _check_budget_counts(at) -> None:
    """The page shows the result's own numbers: counts, plan, totals, metrics and tables."""
    from compress_core import columns
    from compress_core.report import budget_totals

    req = at.session_state["budget_request"]
    args = (req["budget"], req["common"], req["rates"], req["bits"], req["evals"])
    r = ui.cache.budget(*PICK, *args)  # the page's own cached result
    n = r.counts()
    assert n.met >= 1 and n.built > n.met
    # The allowance the slider set is the one counted, and the grid comes on top of it.
    assert n.allowed == req["evals"] == at.slider(key="budget_evals").value
    assert n.built == n.grid + n.used and n.used <= n.allowed
    counts = dict(n=n.built, grid=n.grid, used=n.used, allowed=n.allowed, met=n.met)
    assert at.status[0].label == text("en", "budget.searched", **counts)
    sources = {k: n.by_source.get(k, 0) for k in ("greedy", "refine")}
    caption = text(
        "en",
        "budget.every_help",
        **counts,
        **dict(sensitivity=n.sensitivity, tested=n.tested, steps=n.steps),
        **sources,
        s=f"{r.seconds:.1f}",
    )
    captions = [c.value for c in at.caption]
    assert caption in captions
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)  # every model the search built
    legend = {trace.get("name") for trace in spec["data"]}
    for source, count in n.by_source.items():
        assert text("en", "chart.source", source=text("en", f"source.{source}"), n=count) in legend
    # The metrics are the chosen model's; the plan table sums to them with the header.
    c, totals = r.chosen, r.totals()
    metric = {m.label: m.value for m in at.metric}
    assert metric["Compressed size"] == human_bytes(c.artifact_bytes)
    assert metric["Non-zero parameters"] == f"{c.nonzero_params:,}"
    assert metric["Validation accuracy"] == f"{c.val_accuracy:.2%}"
    assert metric["Test accuracy"] == f"{r.test.accuracy:.2%}"
    deltas = {m.label: m.proto.delta for m in at.metric}
    assert deltas["Compressed size"] == f"{100 * r.size_vs_dense():+.1f}% vs fp32"
    uniform = next(i.value for i in at.info if "Best uniform setting" in i.value)
    assert f"**{r.saved_vs_uniform():.1%}** smaller" in uniform
    plan_df, tried_df, sens_df = at.dataframe  # the plan, every candidate, the sensitivity
    plan = plan_df.value
    assert plan.to_dict("records") == r.plan_rows()
    assert plan["nonzero"].sum() == totals.nonzero == c.nonzero_params
    assert plan["bytes"].sum() + totals.header_bytes == totals.artifact_bytes == c.artifact_bytes
    assert budget_totals("en", totals) in captions
    # The plan chart plots the table's non-zero share, under that name.
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)
    shares = [t for t in bars["data"] if t.get("xaxis", "x") == "x"]
    y = shares[0]["y"]
    y = np.frombuffer(base64.b64decode(y["bdata"]), y["dtype"]) if isinstance(y, dict) else y
    assert list(y) == plan["nonzero_share"].tolist()
    assert bars["layout"]["yaxis"]["title"]["text"] == text("en", "chart.nonzero_share")
    # Every candidate with "Meets δ"; human column names throughout, no raw codes.
    tried = tried_df.value
    assert tried["meets"].tolist() == [row["meets"] for row in r.tried_rows()]
    assert sum(tried["meets"]) == n.met
    assert set(tried["source"]) <= {text("en", f"source.{s}") for s in n.by_source}
    tables = ((plan_df, columns.PLAN), (tried_df, columns.TRIED), (sens_df, columns.SENSITIVITY))
    for frame, spec in tables:
        config = json.loads(frame.proto.columns)
        names = {v["label"] for v in config.values() if "label" in v}
        assert names == {text("en", k) for k, _ in spec.values()}
    sens = sens_df.value
    assert "loss" not in sens and "split" not in sens and len(sens) == n.sensitivity


def test_budget_page_fine_tunes_the_chosen_plan_with_a_stop_button_only_while_it_runs(
    digits_lenet,
):
    from compress_core.analysis.budget import finetune_plan
    from compress_core.core.config import CompressionConfig as Config
    from compress_core.train.finetune import FinetuneConfig

    at = page("3_Budget.py").run()
    at.multiselect(key="budget_rates").set_value([0, 50, 90])
    at.multiselect(key="budget_bits").set_value([4, 32])
    at.slider(key="budget_evals").set_value(5)
    at.button(key="budget_submit").click().run()
    assert not at.exception
    assert text("en", "budget.ft_title") in [s.value for s in at.subheader]
    assert not [b for b in at.button if "Stop" in b.label]
    assert not at.button(key="budget_ft_run").disabled  # 1 retraining epoch by default
    at.slider(key="budget_ft_epochs").set_value(0).run()
    assert at.button(key="budget_ft_run").disabled  # nothing to train
    at.slider(key="budget_ft_epochs").set_value(1).run()
    at.button(key="budget_ft_run").click().run()
    assert not at.exception and not at.error
    assert not [b for b in at.button if "Stop" in b.label]  # done: no Stop button
    assert any(s.label.endswith(": done") for s in at.status)
    # Before: the plan's one-shot test accuracy; after: the engine's fine-tuned plan.
    req = at.session_state["budget_request"]
    args = (req["budget"], req["common"], req["rates"], req["bits"], req["evals"])
    r = ui.cache.budget(*PICK, *args)
    base, data = digits_lenet
    common = Config.from_dict(json.loads(req["common"]))
    tuned = finetune_plan(base, data, r.chosen.plan, common, FinetuneConfig(epochs=1))
    shown = [m.value for m in at.metric if m.label == "Test accuracy"]
    assert shown[-2:] == [f"{r.test.accuracy:.2%}", f"{tuned.accuracy:.2%}"]
    sizes = [m.value for m in at.metric if m.label == "Compressed size"]
    assert sizes[-1] == human_bytes(tuned.artifact_bytes)


def test_ecq_is_offered_and_used_by_explore_and_sweep(digits_lenet):
    base, data = digits_lenet
    explore = AppTest.from_file(str(PAGES.parent / "app.py"), default_timeout=TIMEOUT).run()
    explore.selectbox(key="quant").set_value("ecq").run()
    assert not explore.exception
    direct = run_on(base, data, CompressionConfig(prune_rate=0.5, bits=4, quant="ecq"))
    shown = next(m.value for m in explore.metric if m.label == "Compressed size")
    assert shown == human_bytes(direct.artifact_bytes)
    at = page("1_Sweep.py").run()
    at.multiselect(key="sweep_rates").set_value([50])
    at.multiselect(key="sweep_bits").set_value([4])
    at.multiselect(key="sweep_quants").set_value(["ecq"])
    at.button(key="sweep_submit").click().run()
    assert not at.exception
    table = _sweep_table(at)
    assert table["quant"].tolist() == ["ecq"]
    assert table["artifact_bytes"].tolist() == [direct.artifact_bytes]


def test_budget_page_searches_with_ecq_and_fine_tunes_that_plan(digits_lenet):
    from compress_core.analysis.budget import finetune_plan
    from compress_core.train.finetune import FinetuneConfig

    at = page("3_Budget.py").run()
    at.selectbox(key="budget_quant").set_value("ecq")
    at.multiselect(key="budget_rates").set_value([0, 50, 90])
    at.multiselect(key="budget_bits").set_value([3, 4])
    at.slider(key="budget_evals").set_value(5)
    at.button(key="budget_submit").click().run()
    assert not at.exception and not at.error
    req = at.session_state["budget_request"]
    common = CompressionConfig.from_dict(json.loads(req["common"]))
    assert common.quant == "ecq"
    at.slider(key="budget_ft_qat").set_value(1).run()
    at.button(key="budget_ft_run").click().run()
    assert not at.exception and not at.error
    args = (req["budget"], req["common"], req["rates"], req["bits"], req["evals"])
    r = ui.cache.budget(*PICK, *args)
    assert r.test.config["quant"] == "ecq"  # the search built its candidates with ecq
    base, data = digits_lenet
    ft = FinetuneConfig(epochs=1, qat_epochs=1)
    tuned = finetune_plan(base, data, r.chosen.plan, common, ft)
    assert tuned.config["quant"] == "ecq"
    shown = [m.value for m in at.metric if m.label == "Test accuracy"]
    assert shown[-1] == f"{tuned.accuracy:.2%}"
    sizes = [m.value for m in at.metric if m.label == "Compressed size"]
    assert sizes[-1] == human_bytes(tuned.artifact_bytes)

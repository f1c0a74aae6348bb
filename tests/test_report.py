"""The HTML reports' tables: the pages' column names and units, percentages, pp and yes/no."""

from html import escape
from html.parser import HTMLParser

import pandas as pd
import pytest

from compress_core import CompressionConfig, columns, run_on
from compress_core.analysis.budget import Budget, search
from compress_core.catalog import percent, text
from compress_core.core.config import FLOAT_BITS
from compress_core.report import budget_report, budget_totals, run_report, sweep_report

RATES = (0.0, 0.5, 0.8, 0.95)
BITS = (2, 4, FLOAT_BITS)


class _Tables(HTMLParser):
    """The report's tables as lists of rows of cell texts (header row first)."""

    def __init__(self):
        super().__init__()
        self.tables, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None


def _report_tables(html: str) -> list[list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables[2:]  # after "what was compressed" and "machine"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_budget_report_names_columns_and_shows_percentages_as_the_page(digits_lenet, lang):
    base, data = digits_lenet
    r = search(base, data, Budget(max_drop_pp=1.0), rates=RATES, bits=BITS, max_evals=4)
    html = budget_report(lang, "lenet5", "digits", r)
    plan, tried = _report_tables(html)
    assert plan[0] == [text(lang, key) for key, _ in columns.PLAN.values()]
    assert tried[0] == [text(lang, key) for key, _ in columns.TRIED.values()]
    rows = r.plan_rows()
    assert [row[0] for row in plan[1:]] == [row["layer"] for row in rows]
    share = plan[0].index(text(lang, "bcol.nonzero_share"))
    assert [row[share] for row in plan[1:]] == [
        percent(lang, row["nonzero_share"], 1) for row in rows
    ]
    meets = tried[0].index(text(lang, "bcol.meets"))
    words = {True: text(lang, "table.yes"), False: text(lang, "table.no")}
    assert [row[meets] for row in tried[1:]] == [words[row["meets"]] for row in r.tried_rows()]
    accuracy = tried[0].index(text(lang, "bcol.val_accuracy"))
    assert all(row[accuracy].endswith("%") for row in tried[1:])  # 97.33%, never 0.9733
    for sentence in (text(lang, "budget.delta"), budget_totals(lang, r.totals())):
        assert escape(sentence) in html
    for raw in ("delta_pp", "val_accuracy", "nonzero_share", "uniform_bits", "True", "False"):
        assert raw not in html.split("</style>")[1].split("<script")[0], raw


def test_the_sweep_report_table_has_human_columns(digits_lenet):
    base, data = digits_lenet
    results = [run_on(base, data, CompressionConfig(prune_rate=p, bits=4)) for p in (0.0, 0.7)]
    frame = pd.DataFrame([x.to_row() for x in results])
    (table,) = _report_tables(sweep_report("en", "lenet5", "digits", frame, {}))
    assert table[0] == [text("en", k) for c, (k, _) in columns.RESULT.items() if c in frame]
    change = table[0].index(text("en", "rcol.delta_pp"))
    assert [row[change] for row in table[1:]] == [f"{x.delta_pp:+.2f} pp" for x in results]
    accuracy = table[0].index(text("en", "rcol.accuracy"))
    assert [row[accuracy] for row in table[1:]] == [f"{x.accuracy:.2%}" for x in results]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_run_report_layers_table_has_the_layers_tab_columns(digits_lenet, lang):
    base, data = digits_lenet
    result = run_on(base, data, CompressionConfig(prune_rate=0.5, bits=4))
    errors = pd.DataFrame({"layer": [], "weight_sqnr_db": [], "output_sqnr_db": []})
    _, layers, _ = _report_tables(run_report(lang, result, errors))
    assert layers[0] == [text(lang, key) for key, _ in columns.LAYERS.values()]
    assert [row[0] for row in layers[1:]] == [row["layer"] for row in result.layers]
    pruned = layers[0].index(text(lang, "layers.sparsity"))
    assert [row[pruned] for row in layers[1:]] == [
        percent(lang, row["sparsity"], 1) for row in result.layers
    ]

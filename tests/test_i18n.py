"""The catalogs: same keys and placeholders, the glossary used, and no stray English on screen."""

import ast
import re
import string
from pathlib import Path

import pytest

from compress_core import catalog

ROOT = Path(__file__).resolve().parent.parent
# Files whose user-visible strings all go through t(); the coverage test holds them to it.
CONVERTED = [
    "pages/0_Learn.py",
    "ui/learn.py",
    "ui/learn_charts.py",
    "ui/report.py",
    "ui/i18n.py",
    "ui/error_table.py",
    "app.py",
    "ui/controls.py",
    "ui/pick.py",
    "ui/metrics.py",
    "ui/charts.py",
    "ui/explain.py",
    "ui/format.py",
    "pages/1_Sweep.py",
    "pages/2_Sensitivity.py",
    "pages/3_Budget.py",
    "pages/5_Compare.py",
    "pages/6_Your_model.py",
    "pages/4_Recovery.py",
    "ui/view.py",
    "ui/cache.py",
    "ui/ship.py",
    "ui/remote.py",
    "ui/jobs.py",
    "ui/soft_sharing.py",
    "ui/safe.py",
    "ui/runtime.py",
]
# Streamlit calls whose positional text arguments the user sees.
SHOWN = {
    "title", "header", "subheader", "caption", "markdown", "write", "text", "info", "warning",
    "error", "success", "button", "download_button", "link_button", "page_link", "slider",
    "select_slider", "selectbox", "radio", "multiselect", "toggle", "checkbox", "number_input",
    "text_input", "metric", "expander", "tabs", "spinner", "status", "toast", "form_submit_button",
}  # fmt: skip
# Keyword arguments that are shown (Streamlit help texts, plotly titles and legend names).
SHOWN_KEYWORDS = {"help", "label", "caption", "title", "name", "text", "annotation_text"}


def _keys(lang):
    return set(catalog.catalog(lang))


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_catalogs_have_the_same_keys():
    en, zh = _keys("en"), _keys("zh")
    assert not en - zh, f"missing in zh.json: {sorted(en - zh)}"
    assert not zh - en, f"extra in zh.json (not in en.json): {sorted(zh - en)}"


def test_catalogs_have_the_same_placeholders_and_no_empty_text():
    en, zh = catalog.catalog("en"), catalog.catalog("zh")
    for key in en:
        assert en[key].strip() and zh[key].strip(), key
        assert _fields(en[key]) == _fields(zh[key]), key


def _glossary() -> list[tuple[list[str], str]]:
    rows = []
    for line in (ROOT / "docs/glossary.md").read_text(encoding="utf-8").splitlines()[4:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 2 and cells[0] and not cells[0].startswith("---"):
            english = [e.strip() for e in re.sub(r"\(.*?\)", "", cells[0]).split("/")]
            rows.append((english, cells[1].split("（")[0]))
    return rows


@pytest.mark.parametrize(
    "english, chinese",
    [(e, c) for e, c in _glossary() if e[0] in ("pruning", "quantization", "weight sharing")]
    + [(e, c) for e, c in _glossary() if e[0] in ("codebook", "Huffman coding", "Pareto front")]
    + [(e, c) for e, c in _glossary() if e[0] in ("sparsity", "bit width", "fine-tuning")],
)
def test_glossary_terms_are_used_consistently_in_zh(english, chinese):
    en, zh = catalog.catalog("en"), catalog.catalog("zh")
    pattern = re.compile("|".join(rf"\b{re.escape(e)}" for e in english if e), re.IGNORECASE)
    using = [k for k, v in en.items() if pattern.search(v) and "torch.nn.utils.prune" not in v]
    assert using, f"no English text uses {english}: drop it from the checked terms"
    wrong = [k for k in using if chinese not in zh[k]]
    assert not wrong, f"these zh texts should say {chinese}: {wrong}"


def test_glossary_lists_every_term_the_issue_names():
    chinese = {c for _, c in _glossary()}
    for term in (
        "剪枝",
        "量化",
        "权重共享",
        "码本",
        "霍夫曼编码",
        "帕累托前沿",
        "稀疏度",
        "比特宽度",
    ):
        assert term in chinese


def _literals(path: Path) -> list[str]:
    """User-visible string literals in ``path``: shown arguments that are not t(...) calls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else ""
        # the label (first argument); a metric shows its value and delta too
        args = node.args[: 3 if name == "metric" else 1] if name in SHOWN else []
        args = args + [k.value for k in node.keywords if k.arg in SHOWN_KEYWORDS]
        for arg in args:
            for item in arg.elts if isinstance(arg, (ast.List, ast.Tuple)) else [arg]:
                if isinstance(item, ast.JoinedStr) or (
                    isinstance(item, ast.Constant)
                    and isinstance(item.value, str)
                    and re.search("[A-Za-z]{2}", item.value)  # words, not symbols such as |w|
                ):
                    found.append(f"{path.name}:{item.lineno}: {ast.unparse(item)}")
    return found


@pytest.mark.parametrize("name", CONVERTED)
def test_converted_files_show_no_string_that_is_not_a_catalog_key(name):
    assert _literals(ROOT / name) == []
    used = set(re.findall(r'\bt\("([a-z0-9_.]+)"', (ROOT / name).read_text(encoding="utf-8")))
    assert not used - _keys("en"), f"keys missing from en.json: {sorted(used - _keys('en'))}"


def test_every_page_and_ui_module_is_held_to_the_catalog():
    shown = {f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py")} | {"app.py"}
    shown |= {f"ui/{p.name}" for p in (ROOT / "ui").glob("*.py") if p.name != "__init__.py"}
    missing = shown - set(CONVERTED)
    assert not missing, f"add these to CONVERTED (and move their texts to t()): {missing}"


def test_the_coverage_scan_catches_an_english_literal(tmp_path):
    page = tmp_path / "page.py"
    page.write_text(
        'st.title("Sweep")\nst.caption(t("sweep.caption"))\nst.metric(t("a"), f"{x:.2%}")\n'
    )
    assert [f.split(": ", 1)[1] for f in _literals(page)] == ["'Sweep'", "f'{x:.2%}'"]


def test_the_language_follows_the_locale_code_and_falls_back_to_english():
    assert catalog.language("zh-CN") == catalog.language("zh_Hans") == "zh"
    assert catalog.language("en-GB") == catalog.language("de-DE") == catalog.language(None) == "en"
    assert catalog.text("zh", "learn.title") == "学习：剪枝与量化"
    assert catalog.text("fr", "learn.title") == catalog.text("en", "learn.title")


def test_numbers_are_formatted_with_the_catalogs_marks_and_units():
    assert catalog.number("en", 1234567.891, 2) == "1,234,567.89"
    assert catalog.number("zh", 1234567) == "1,234,567"
    assert catalog.percent("en", 0.1234) == "12.3%"
    assert catalog.nbytes("en", 27_345) == "27.3 KB"
    assert catalog.nbytes("zh", 950) == "950 字节"

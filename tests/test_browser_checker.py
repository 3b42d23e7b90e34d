"""The headless-Chromium page checker (``tests/browser.py``) on small synthetic pages.

The pages are written to a temporary folder: some rendered by nbconvert's ``lab`` template
from tiny notebooks (the real markup of report pages, stderr and traceback blocks included),
some written by hand around one fault each. All pages of a set go through one browser.
"""

from __future__ import annotations

import base64
import struct
import time
import zlib
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tests import browser
from tests.browser import _link_problems, check_pages, require_chromium

FINDINGS = '<div id="findings" class="findings"><p>The shift is seen in 3 of 4 factors.</p></div>'
NAV = (
    '<nav class="ls-nav"><a href="index.html">Index</a> '
    '<a href="good.html">Next: good page</a></nav>'
)
#: A heading with a non-ASCII character: nbconvert writes its id percent-encoded.
HEADING = "01 · Good page"
#: Seconds per page the browser test may take on average (it takes well under one).
SECONDS_PER_PAGE = 5.0


def _png(width: int = 8, height: int = 6) -> bytes:
    """A small valid red PNG, made with the standard library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _nbconvert(target: Path, outputs: list[nbformat.NotebookNode]) -> Path:
    """Render a two-cell notebook (findings and nav, then code with ``outputs``) like the runner."""
    nb = new_notebook(
        cells=[
            new_markdown_cell(f"# {HEADING}\n\n{FINDINGS}\n\n{NAV}\n\nSee [the top](#top)."),
            new_code_cell("print('ok')", execution_count=1, outputs=outputs),
        ],
        metadata={"language_info": {"name": "python"}},
    )
    body, _ = HTMLExporter(template_name="lab", embed_images=True).from_notebook_node(nb)
    target.write_text(body, encoding="utf-8")
    return target


def _page(target: Path, body: str, findings: str = FINDINGS, nav: str = NAV) -> Path:
    """Write a small hand-made page with findings box and nav around ``body``."""
    target.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>t</title></head>\n"
        f"<body>{nav}\n{findings}\n{body}\n</body></html>\n",
        encoding="utf-8",
    )
    return target


STDOUT = new_output("stream", name="stdout", text="ok\n")
FIGURE = new_output(
    "display_data",
    data={"image/png": base64.b64encode(_png()).decode(), "text/plain": "<Figure 8x6>"},
)
STDERR = new_output("stream", name="stderr", text="UserWarning: the fit did not converge\n")
TRACEBACK = new_output(
    "error",
    ename="ValueError",
    evalue="bad value",
    traceback=["\x1b[0;31mValueError\x1b[0m: bad value", "  File <cell>, line 1"],
)
#: Code input areas in nbconvert's markup, hidden the two supported ways.
CODE_IN_DETAILS = (
    '<div class="jp-Cell jp-CodeCell jp-Notebook-cell"><details><summary>Code</summary>'
    '<div class="jp-Cell-inputWrapper"><div class="jp-InputArea jp-Cell-inputArea">'
    "<pre>x = 1</pre></div></div></details>"
    '<div class="jp-OutputArea"><pre>1</pre></div></div>'
)
CODE_CSS_HIDDEN = (
    "<style>.ls-code-hidden .jp-InputArea { display: none; }</style>"
    '<div class="jp-Cell jp-CodeCell jp-Notebook-cell ls-code-hidden">'
    '<div class="jp-Cell-inputWrapper"><div class="jp-InputArea jp-Cell-inputArea">'
    "<pre>x = 1</pre></div></div></div>"
)


def _site(folder: Path) -> list[Path]:
    """The pages of the main set, in the order they are checked."""
    folder.mkdir()
    (folder / "figure.png").write_bytes(_png())
    return [
        _page(
            folder / "index.html",
            '<ul><li><a href="good.html">good</a></li><li><a href="good.html#findings">'
            'findings</a></li></ul><img src="figure.png" alt="local figure">',
        ),
        _nbconvert(folder / "good.html", [STDOUT, FIGURE]),
        _nbconvert(folder / "stderr.html", [STDOUT, STDERR]),
        _nbconvert(folder / "traceback.html", [TRACEBACK]),
        _page(
            folder / "hidden_stderr.html",
            '<details><summary>log</summary><div class="jp-RenderedText jp-OutputArea-output"'
            ' data-mime-type="application/vnd.jupyter.stderr"><pre>INFO: quiet</pre></div>'
            "</details>",
        ),
        _page(folder / "broken_image.html", '<img src="missing_umap.png" alt="UMAP">'),
        _page(folder / "js_error.html", "<script>undefinedPlotFunction();</script>"),
        _page(folder / "console_error.html", "<script>console.error('plot failed');</script>"),
        _page(folder / "too_wide.html", '<div style="width: 2000px">a wide table</div>'),
        _page(folder / "no_findings.html", "<p>no box</p>", findings=""),
        _page(
            folder / "empty_findings.html",
            "",
            findings='<div id="findings" class="findings"> </div>',
        ),
        _page(folder / "no_nav.html", "<p>no way out</p>", nav=""),
        _page(folder / "broken_nav.html", '<nav class="ls-nav"><a href="07_gone.html">7</a></nav>'),
        _page(folder / "bad_fragment.html", '<a href="good.html#no-such-section">section</a>'),
        folder / "not_there.html",
    ]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Chromium's path; skips the module without it, except in CI where that fails."""
    return require_chromium()


@pytest.fixture(scope="module")
def checked(chromium, tmp_path_factory) -> tuple[dict[str, list[str]], float]:
    """Problems per page name of the main set, and the seconds per page the check took."""
    pages = _site(tmp_path_factory.mktemp("browser") / "site")
    start = time.monotonic()
    results = check_pages(pages, chromium=chromium)
    per_page = (time.monotonic() - start) / len(pages)
    print(f"browser check: {len(pages)} pages, {per_page:.2f} s per page")
    return {path.name: problems for path, problems in results.items()}, per_page


def _problems(checked: tuple[dict[str, list[str]], float], name: str) -> list[str]:
    return checked[0][name]


def _one_like(problems: list[str], *words: str) -> None:
    assert any(all(w in p for w in words) for p in problems), (words, problems)


def test_good_pages_pass(checked):
    assert _problems(checked, "index.html") == []
    assert _problems(checked, "good.html") == []


def test_hidden_stderr_block_passes(checked):
    assert _problems(checked, "hidden_stderr.html") == []


def test_visible_stderr_stream_fails(checked):
    problems = _problems(checked, "stderr.html")
    assert len(problems) == 1, problems
    _one_like(problems, "stderr", "the fit did not converge")


def test_visible_traceback_fails(checked):
    _one_like(_problems(checked, "traceback.html"), "stderr/error output", "ValueError")


def test_broken_image_fails_and_is_named(checked):
    _one_like(_problems(checked, "broken_image.html"), "image did not load", "missing_umap.png")


def test_javascript_error_fails(checked):
    _one_like(_problems(checked, "js_error.html"), "JavaScript error", "undefinedPlotFunction")


def test_console_error_fails(checked):
    _one_like(_problems(checked, "console_error.html"), "console.error", "plot failed")


def test_too_wide_page_fails(checked):
    _one_like(_problems(checked, "too_wide.html"), "px wide", "1400")


def test_missing_or_empty_findings_fails(checked):
    assert _problems(checked, "no_findings.html") == [
        'no findings box: no element with id="findings"'
    ]
    assert _problems(checked, "empty_findings.html") == ["findings box is empty"]


def test_missing_nav_fails(checked):
    _one_like(_problems(checked, "no_nav.html"), "no navigation")


def test_nav_link_to_missing_file_fails(checked):
    _one_like(_problems(checked, "broken_nav.html"), "07_gone.html", "does not exist")


def test_link_to_missing_fragment_fails(checked):
    _one_like(_problems(checked, "bad_fragment.html"), "no-such-section", "good.html")


def test_missing_page_is_reported(checked):
    _one_like(_problems(checked, "not_there.html"), "does not exist")


def test_a_few_seconds_per_page(checked):
    assert checked[1] < SECONDS_PER_PAGE


def test_code_hidden_check(chromium, tmp_path):
    pages = [
        _nbconvert(tmp_path / "code_visible.html", [STDOUT]),
        _page(tmp_path / "code_details.html", CODE_IN_DETAILS),
        _page(tmp_path / "code_css.html", CODE_CSS_HIDDEN),
    ]
    _page(tmp_path / "index.html", "")
    (tmp_path / "good.html").write_text("<p>target of the nav</p>")
    shown = check_pages(pages, chromium=chromium)
    assert all(problems == [] for problems in shown.values()), shown
    hidden = check_pages(pages, chromium=chromium, code_hidden=True)
    _one_like(hidden[pages[0]], "code input visible", "print('ok')")
    assert hidden[pages[1]] == [] and hidden[pages[2]] == []


def _found(navs: list[list[str]], links: list[str] | None = None) -> dict:
    return {"navs": navs, "links": links or [h for n in navs for h in n], "ids": []}


def test_sequence_requires_previous_and_next_links(tmp_path):
    pages = [tmp_path / n for n in ("index.html", "01.html", "02.html", "03.html")]
    for page in pages:
        page.write_text("<p>x</p>")
    order = pages[1:]
    ok = _found([["index.html", "01.html", "03.html"]])
    assert _link_problems(pages[2], ok, order, {}) == []
    partial = _found([["index.html", "01.html"]])
    assert _link_problems(pages[2], partial, order, {}) == [
        "navigation: no link to the next page 03.html in the nav"
    ]
    assert _link_problems(pages[1], _found([["index.html", "02.html"]]), order, {}) == []
    index = _found([["01.html", "02.html"]])
    assert _link_problems(pages[0], index, order, {}) == []
    lonely = _found([["index.html"]])
    assert _link_problems(pages[0], lonely, None, {}) == [
        "navigation: the index page's nav links to no other page"
    ]
    assert _link_problems(pages[1], _found([["02.html"]]), None, {}) == [
        "navigation: no link to index.html in the nav"
    ]
    assert _link_problems(pages[1], _found([[]]), None, {}) == [
        'navigation: <nav class="ls-nav"> has no links'
    ]


def test_percent_encoded_heading_ids_resolve(tmp_path):
    (tmp_path / "index.html").write_text('<h1 id="01-%C2%B7-Data">x</h1>')
    page = tmp_path / "01.html"
    page.write_text("x")
    links = ["index.html#01-%C2%B7-Data", "index.html", "#top", "https://example.org/x"]
    assert _link_problems(page, _found([["index.html"]], links), None, {}) == []


def test_missing_chromium_skips_outside_ci_and_fails_in_ci(monkeypatch):
    monkeypatch.setattr(browser, "chromium_path", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium not found"):
        require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="may not be skipped"):
        require_chromium()


def test_a_browser_that_does_not_start_is_an_error(tmp_path):
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 1\n")
    fake.chmod(0o755)
    page = _page(tmp_path / "index.html", "")
    with pytest.raises(browser.BrowserError, match="cannot open display"):
        check_pages([page], chromium=str(fake), timeout=10)


def test_remote_resources_count_only_when_asked(chromium, tmp_path):
    # nbconvert's lab template loads require.js and MathJax from a CDN; the checker never
    # fetches them and ignores their failed loads unless allow_remote=False.
    page = _nbconvert(tmp_path / "good.html", [STDOUT])
    _page(tmp_path / "index.html", "")
    assert check_pages([page], chromium=chromium) == {page: []}
    problems = check_pages([page], chromium=chromium, allow_remote=False)[page]
    _one_like(problems, "browser error", "require")

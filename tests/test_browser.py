"""The smoke run's report, as a reader opens it: every page in headless Chromium.

Each page must open with its Findings box, hide its code until asked, show no stderr block,
load every image, run no failing JavaScript, fit 1,400 px and link to the index and its
neighbours (the checker is ``tests/browser.py``, with its own tests). No page and no
``metrics.json`` may name a folder of the machine that made them.
"""

from __future__ import annotations

import pytest

from tests.browser import check_pages, require_chromium

STEPS = ["01_data", "02_perturb", "03_ldvae", "04_latent_viz", "05_classifier", "06_loadings"]


@pytest.mark.pipeline
def test_every_report_page_passes_the_browser_check(smoke_run):
    chromium = require_chromium()
    assert smoke_run.result.returncode == 0, smoke_run.result.stderr[-2000:]
    rep = smoke_run.report
    pages = [rep / f"{name}.html" for name in STEPS] + [rep / "index.html"]
    problems = check_pages(pages, chromium=chromium, code_hidden=True, sequence=pages[:-1])
    assert {p.name: found for p, found in problems.items() if found} == {}
    index = (rep / "index.html").read_text()
    for stem in ("umap", "confusion", "recovery"):  # the key figures as thumbnails
        assert f"{stem}.png" not in index  # embedded, not linked
    assert index.count("<figure>") >= 3


@pytest.mark.pipeline
def test_no_page_and_no_metrics_name_a_machine_folder(smoke_run, root):
    rep, run = smoke_run.report, smoke_run.run
    forbidden = {str(root), str(run), str(rep)}
    files = [*rep.glob("*.html"), run / "metrics.json"]
    assert files
    for path in files:
        text = path.read_text()
        for folder in forbidden:
            assert folder not in text, f"{path.name} names {folder}"


@pytest.mark.pipeline
def test_logging_goes_to_the_run_log_not_the_page(smoke_run):
    logs = smoke_run.run / "logs"
    assert (logs / "03_ldvae.log").is_file()
    assert "latentshift" in (logs / "03_ldvae.log").read_text()
    page = (smoke_run.report / "03_ldvae.html").read_text()
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in page
    assert "INFO:latentshift" not in page
    for step in STEPS:  # scvi-tools' own INFO lines (rich, on stdout) stay off every page
        text = (smoke_run.report / f"{step}.html").read_text()
        assert "attempting to transfer AnnData setup" not in text, step

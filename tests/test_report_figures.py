"""Figures on the report pages: shown whatever MPLBACKEND says, each with alternative text."""

from __future__ import annotations

import base64
import html
import io
import os
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402

from latentshift.figures import captions
from latentshift.report import pages as report
from latentshift.run import bookkeeping  # noqa: E402


def _png() -> str:
    fig, ax = plt.subplots(figsize=(1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def test_alt_text_is_the_title_then_the_panels():
    fig, axes = plt.subplots(1, 2)
    fig.suptitle("UMAP of the LDVAE latent (simulated data)")
    axes[0].set_title("cell type")
    axes[1].set_title("condition")
    assert captions.figure_alt_text(fig) == (
        "Figure: UMAP of the LDVAE latent (simulated data). Panels: cell type; condition"
    )
    plt.close(fig)


def test_alt_text_of_one_titled_panel_and_of_an_untitled_one():
    fig, ax = plt.subplots()
    ax.set_title("LDVAE training")
    fig.colorbar(ax.imshow([[0, 1]]))  # the colour bar is not a panel
    assert captions.figure_alt_text(fig) == "Figure: LDVAE training"
    plt.close(fig)
    fig, ax = plt.subplots()
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    assert captions.figure_alt_text(fig) == "Figure: x axis epoch, y axis loss"
    plt.close(fig)


def test_alt_text_is_cut_at_the_limit():
    fig, ax = plt.subplots()
    ax.set_title("x" * 500)
    text = captions.figure_alt_text(fig, limit=50)
    assert len(text) == 50 and text.endswith("…")
    plt.close(fig)


def test_outside_a_kernel_figures_are_left_alone():
    assert captions.set_figure_alt_text() is False


def test_the_page_carries_each_figures_alt_text(tmp_path):
    nb = nbformat.v4.new_notebook()
    described = nbformat.v4.new_output(
        "display_data",
        data={"image/png": _png(), "text/plain": "<Figure>"},
        metadata={"image/png": {"alt": 'Figure: loss <"curves">'}},
    )
    bare = nbformat.v4.new_output("display_data", data={"image/png": _png()})
    cell = nbformat.v4.new_code_cell("plot()")
    cell["outputs"] = [described, bare]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), cell]
    executed = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(executed))
    page = report.render_html(executed, tmp_path / "nb.html").read_text()
    assert '<"curves">' not in page  # escaped
    alts = [html.unescape(m[1]) for m in re.findall(r"<img\b[^>]*?\balt=([\"'])(.*?)\1", page)]
    # an output without alt text gets nbconvert's placeholder, as before
    assert alts == ['Figure: loss <"curves">', "No description has been provided for this image"]


@pytest.mark.parametrize("before", [None, "Agg"])
def test_kernels_start_with_the_inline_backend_and_the_shell_is_restored(monkeypatch, before):
    if before is None:
        monkeypatch.delenv("MPLBACKEND", raising=False)
    else:
        monkeypatch.setenv("MPLBACKEND", before)
    with bookkeeping.inline_figures():
        assert os.environ["MPLBACKEND"] == bookkeeping.INLINE_BACKEND
    assert os.environ.get("MPLBACKEND") == before

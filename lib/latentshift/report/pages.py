"""The HTML report, written for readers who did not run it: answer first, evidence next, code last.

:func:`render_html` turns one executed notebook into a self-contained page (figures embedded, no
remote scripts): the step's Findings box (the output of the cell tagged ``findings``) moves to
the top, the code is hidden until the reader asks (a toggle in the navigation bar, or
``report.show_code``), logging (stderr) goes to the run log instead of the page, the
``parameters`` cells are left out (the resolved params close the page with its provenance),
and a navigation bar links to the index and the previous and next step.

:func:`page` is the shared shell (the index, sweep and bench pages use it too); the index
itself is written by :func:`latentshift.report.index_page.render_index`.
"""

from __future__ import annotations

import base64
import copy
import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from latentshift.data import artifacts

PAGE_CSS = """
:root { --ls-accent: #2b6cb0; }
body.ls-page { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
  max-width: 1100px; margin: 0 auto; padding: 0 1.2em 3em; }
body.jp-Notebook { max-width: 1180px; margin: 0 auto; padding: 0 1em 3em; }
.ls-nav { position: sticky; top: 0; z-index: 10; background: #f7f9fc; border-bottom: 1px solid #d6dde8;
  padding: 0.5em 0.8em; display: flex; gap: 1em; align-items: center; flex-wrap: wrap;
  font-family: system-ui, sans-serif; font-size: 14px; }
.ls-nav a { color: var(--ls-accent); text-decoration: none; }
.ls-nav a:hover { text-decoration: underline; }
.ls-nav .ls-here { font-weight: 600; }
.ls-nav button { margin-left: auto; font: inherit; padding: 0.2em 0.8em; cursor: pointer; }
.findings { border: 2px solid var(--ls-accent); border-radius: 6px; background: #f3f8fd;
  padding: 0.4em 1.2em 0.8em; margin: 1em 0 1.5em; font-family: system-ui, sans-serif; }
.findings h2 { margin: 0.4em 0; font-size: 1.25em; }
.findings .ls-headline { font-size: 1.05em; }
.findings li { margin: 0.25em 0; }
.ls-note { background: #fff8e1; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; }
.ls-simulated { background: #fff3cd; border-left: 4px solid #e0a800; padding: 0.4em 0.8em;
  font-weight: 600; }
.ls-error { background: #fde2e2; border-left: 4px solid #c53030; padding: 0.4em 0.8em; }
.ls-thumbs { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 1em; }
.ls-thumbs figure { margin: 0; border: 1px solid #ddd; padding: 0.4em; background: #fff; }
.ls-thumbs img { width: 100%; height: auto; }
.ls-thumbs figcaption { font-size: 13px; margin-top: 0.3em; }
table.ls-table { border-collapse: collapse; margin: 1em 0; }
table.ls-table td, table.ls-table th { border: 1px solid #ccc; padding: 4px 10px; text-align: left;
  vertical-align: top; }
tr.failed td { background: #fde2e2; }
pre.ls-pre { background: #f6f6f6; padding: 1em; overflow: auto; max-width: 100%; }
img { max-width: 100%; height: auto; }
.jp-OutputArea-output { overflow-x: auto; max-width: 100%; }
.jp-RenderedHTMLCommon table { display: block; overflow-x: auto; max-width: 100%; }
table.ls-wide { display: block; overflow-x: auto; max-width: 100%; }
/* reader view: code hidden until asked for */
body:not(.ls-show-code) .jp-CodeCell .jp-Cell-inputWrapper { display: none; }
body:not(.ls-show-code) .jp-CodeCell.jp-mod-noOutputs { display: none; }
.jp-InputPrompt, .jp-OutputPrompt { display: none; }
"""

TOGGLE_JS = """
function lsToggleCode(button) {
  const shown = document.body.classList.toggle("ls-show-code");
  button.textContent = shown ? "Hide code" : "Show code";
  button.setAttribute("aria-pressed", shown ? "true" : "false");
}
"""

_REMOTE_SCRIPT = re.compile(r'<script[^>]*src="https?://[^"]*"[^>]*>\s*</script>\s*', re.I)
_MATHJAX_CONFIG = re.compile(r'<script type="text/x-mathjax-config">.*?</script>\s*', re.S)


def nav_html(
    current: str | None,
    pages: Sequence[str],
    labels: Mapping[str, str] | None = None,
    code_toggle: bool = False,
    show_code: bool = False,
) -> str:
    """The navigation bar: the index, the previous and next step, and the code toggle.

    Parameters
    ----------
    current
        The page this bar sits on (a name of ``pages``, ``"index"`` or ``None``).
    pages
        The step pages in order (``01_data`` …), all in the same folder as the index.
    labels
        Display names (default: the page names).
    code_toggle, show_code
        Whether the bar has the "Show code" button, and whether code starts shown.
    """
    labels = labels or {}
    parts = [f'<a href="index.html" class="{"ls-here" if current == "index" else ""}">Index</a>']
    if current in pages:
        i = list(pages).index(current)
        if i > 0:
            prev = pages[i - 1]
            parts.append(
                f'<a href="{prev}.html" rel="prev">← {html.escape(labels.get(prev, prev))}</a>'
            )
        parts.append(f'<span class="ls-here">{html.escape(labels.get(current, current))}</span>')
        if i + 1 < len(pages):
            nxt = pages[i + 1]
            parts.append(
                f'<a href="{nxt}.html" rel="next">{html.escape(labels.get(nxt, nxt))} →</a>'
            )
    else:
        parts += [f'<a href="{p}.html">{html.escape(labels.get(p, p))}</a>' for p in pages]
    if code_toggle:
        pressed = "true" if show_code else "false"
        text = "Hide code" if show_code else "Show code"
        parts.append(
            f'<button type="button" aria-pressed="{pressed}" onclick="lsToggleCode(this)">'
            f"{text}</button>"
        )
    return '<nav class="ls-nav">' + " ".join(parts) + "</nav>"


def page(title: str, body: str, nav: str) -> str:
    """A whole HTML page in the report's look (index, sweep, bench)."""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{PAGE_CSS}</style>"
        f"<script>{TOGGLE_JS}</script></head>\n"
        f'<body class="ls-page">{nav}\n{body}\n</body></html>\n'
    )


def figure_thumbnail(png: Path, caption: str, href: str | None) -> str:
    """A ``<figure>`` with the PNG embedded (data URI) and a caption linking to its page."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    cap = html.escape(caption)
    if href:
        cap = f'<a href="{html.escape(href)}">{cap}</a>'
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{cap}</figcaption></figure>"
    )


def embedded_figure(fig: Any, figure: Path | None = None) -> str:
    """A matplotlib figure as a PNG data URI for a page (closed afterwards), also saved to
    ``figure`` when given (e.g. the index page's thumbnail)."""
    import io

    import matplotlib.pyplot as plt

    if figure is not None:
        artifacts.save_figure(fig, figure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --- the step pages --------------------------------------------------------------------------


def machine_text(info: dict[str, Any]) -> str:
    """One line for a run's machine: cores, memory, torch threads, GPU or not."""
    cores = f"{info.get('cpu_cores', '?')} CPU cores"
    cpu = ", ".join(str(v) for v in (info.get("cpu_model"), info.get("torch_cpu_capability")) if v)
    parts = [f"{cores} ({cpu})" if cpu else cores]
    if info.get("memory_gib"):
        parts.append(f"{info['memory_gib']:g} GiB memory")
    if info.get("torch"):
        parts.append(f"torch {info['torch']} on {info.get('torch_threads', '?')} threads")
    parts.append("a GPU" if info.get("cuda") else "no GPU")
    return ", ".join(parts)


def provenance_markdown(
    prov: dict[str, Any], params: dict[str, Any], profile: str, entry: dict[str, Any]
) -> str:
    """The provenance block closing every notebook's HTML page (Markdown).

    Parameters
    ----------
    prov
        The run's provenance (:func:`latentshift.record.provenance.provenance` plus ``started``).
    params
        The params as resolved (defaults filled in), file paths as written in the profile.
    profile
        The profile name.
    entry
        This notebook's state entry (``started``, ``finished``, ``seconds``, ``status``).
    """
    packages = ", ".join(f"{k} {v}" for k, v in prov.get("packages", {}).items() if v)
    dirty = prov.get("git_dirty")
    commit = prov.get("git_commit") or "unknown (not a git checkout)"
    if dirty:
        commit += " (working tree had uncommitted changes)"
    lines = [
        "---",
        "## Provenance",
        "",
        f"- **profile**: `{profile}`; data: "
        + (
            "**simulated** (built-in simulator)"
            if params["data"]["source"] == "simulated"
            else f"`{params['data']['path']}`"
        ),
        f"- **data SHA-256**: `{prov.get('data_sha256')}`",
        f"- **git commit**: `{commit}`",
        f"- **this notebook**: started {entry.get('started', '?')}, finished "
        f"{entry.get('finished', '?')} ({entry.get('seconds', '?')} s, "
        f"{entry.get('status', '?')}); run started {prov.get('started', '?')}",
        f"- **Python** {prov.get('python')}; {packages}",
        *([f"- **machine**: {machine_text(prov['machine'])}"] if prov.get("machine") else []),
        "",
        "<details><summary>Parameters (resolved)</summary>",
        "",
        "```yaml",
        yaml.safe_dump(params, sort_keys=False).rstrip(),
        "```",
        "",
        "</details>",
    ]
    return "\n".join(lines)


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def reader_notebook(nb: Any, failed_error: str | None = None) -> tuple[Any, str]:
    """The notebook as a reader sees it, and the log text taken out of it.

    The ``parameters`` and ``injected-parameters`` cells are dropped; stderr outputs (logging,
    warnings, progress bars) are moved to the returned log text; an error output becomes a
    styled note; the cell tagged ``findings`` moves right after the title cell. A notebook
    without a Findings output (it failed before the end) gets a box saying so.

    Parameters
    ----------
    nb
        The executed notebook (not modified).
    failed_error
        The runner's error line when the notebook failed.
    """
    import nbformat

    nb = copy.deepcopy(nb)
    log_lines: list[str] = []
    cells, findings = [], None
    for i, cell in enumerate(nb.cells):
        tags = _tags(cell)
        if "parameters" in tags or "injected-parameters" in tags:
            continue
        if cell.cell_type == "code":
            kept = []
            for out in cell.get("outputs", []):
                if out.get("output_type") == "stream" and out.get("name") == "stderr":
                    log_lines.append(f"[cell {i}] {out.get('text', '')}".rstrip())
                    continue
                if out.get("output_type") == "error":
                    log_lines.append(f"[cell {i}] {out.get('ename')}: {out.get('evalue')}")
                    log_lines += [
                        re.sub(r"\x1b\[[0-9;]*m", "", t) for t in out.get("traceback", [])
                    ]
                    note = (
                        '<div class="ls-error"><b>This step stopped here.</b> '
                        f"{html.escape(str(out.get('ename')))}: "
                        f"{html.escape(str(out.get('evalue')))}</div>"
                    )
                    kept.append(nbformat.v4.new_output("display_data", data={"text/html": note}))
                    continue
                kept.append(out)
            cell["outputs"] = kept
        if "findings" in tags and cell.get("outputs"):
            findings = cell
            continue
        cells.append(cell)
    if findings is None:
        reason = html.escape(failed_error or "the notebook did not reach its Findings cell")
        box = (
            '<section id="findings" class="findings"><h2>Findings</h2>'
            f'<p class="ls-error">This step did not finish: {reason}. The run log has the details.'
            "</p></section>"
        )
        findings = nbformat.v4.new_code_cell(source="")
        findings["outputs"] = [nbformat.v4.new_output("display_data", data={"text/html": box})]
        findings["metadata"]["tags"] = ["findings"]
    first = 1 if cells and cells[0].cell_type == "markdown" else 0
    cells.insert(first, findings)
    nb.cells = cells
    return nb, "\n".join(log_lines)


# nbconvert's lab template, with each figure's alternative text from its output's metadata
TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "latentshift.html.j2"


def render_html(
    executed: Path,
    target: Path,
    footer: str | None = None,
    *,
    nav: str = "",
    show_code: bool = False,
    log_path: Path | None = None,
    failed_error: str | None = None,
) -> Path:
    """Render an executed notebook to one self-contained reader's page with nbconvert.

    Parameters
    ----------
    executed
        The executed notebook (left unchanged: the run keeps every output and all code).
    target
        The HTML file to write.
    footer
        Markdown appended as the page's last cell (the provenance).
    nav
        The navigation bar (:func:`nav_html`).
    show_code
        Start with the code shown (``report.show_code``); the reader can toggle it either way.
    log_path
        Where the stderr taken out of the page goes (``runs/<profile>/logs/NN_name.log``).
    failed_error
        The runner's error line when the notebook failed (shown in the Findings box).
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    nb, log_text = reader_notebook(nb, failed_error)
    if footer:
        nb.cells.append(nbformat.v4.new_markdown_cell(footer))
    exporter = HTMLExporter(
        template_name="lab",
        template_file=TEMPLATE.name,
        extra_template_paths=[str(TEMPLATE.parent)],
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(nb)
    body = _REMOTE_SCRIPT.sub("", body)
    body = _MATHJAX_CONFIG.sub("", body)
    body = body.replace(
        "</head>", f"<style>{PAGE_CSS}</style><script>{TOGGLE_JS}</script></head>", 1
    )
    body = re.sub(
        r'<body class="jp-Notebook',
        '<body class="jp-Notebook' + (" ls-show-code" if show_code else ""),
        body,
        count=1,
    )
    body = body.replace("<main>", f"<main>\n{nav}", 1)
    if log_path is not None:
        artifacts.write_text(log_text + ("\n" if log_text else ""), log_path)
    return artifacts.write_text(body, target)

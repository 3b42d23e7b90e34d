"""The HTML report: each executed notebook rendered by nbconvert, and the index page.

:func:`render_html` turns one executed notebook into a self-contained page (figures embedded)
with its provenance appended; :func:`render_index` writes ``reports/<profile>/index.html`` with
the run's status, headline numbers (:func:`headline_rows`), provenance and params.
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from latentshift import artifacts


def provenance_markdown(
    prov: dict[str, Any], params: dict[str, Any], profile: str, entry: dict[str, Any]
) -> str:
    """The provenance block closing every notebook's HTML page (Markdown).

    Parameters
    ----------
    prov
        The run's provenance (:func:`provenance` plus ``started``).
    params
        The params as resolved (defaults filled in).
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
        f"- **this notebook**: started {entry.get('started', '?')}, finished {entry.get('finished', '?')} "
        f"({entry.get('seconds', '?')} s, {entry.get('status', '?')}); run started {prov.get('started', '?')}",
        f"- **Python** {prov.get('python')}; {packages}",
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


def render_html(executed: Path, target: Path, footer: str | None = None) -> Path:
    """Render an executed notebook to one self-contained HTML file with nbconvert.

    ``footer`` (Markdown) is appended as a last cell of the rendered page only; the executed
    notebook is not changed.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    if footer:
        nb.cells.append(nbformat.v4.new_markdown_cell(footer))
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    body, _ = exporter.from_notebook_node(nb)
    return artifacts.write_text(body, target)


def _flatten(prefix: str, value: Any, out: list[tuple[str, Any]], depth: int = 0) -> None:
    if isinstance(value, dict) and depth < 3:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out, depth + 1)
    elif isinstance(value, int | float | str | bool) or value is None:
        out.append((prefix, value))


def headline_rows(
    metrics: dict[str, Any], null_metrics: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    """The few numbers a reader looks for first, each beside its control, as (label, value) rows.

    Parameters
    ----------
    metrics
        The run's ``metrics.json``.
    null_metrics
        The ``metrics.json`` of the null-perturbation control run (profile ``null``), when it
        exists: its classifier accuracy is shown beside this run's.
    """
    rows: list[tuple[str, str]] = []

    def pct(x: Any) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    data = metrics.get("data", {})
    if data:
        rows.append(("cells × genes after QC", f"{data.get('n_cells')} × {data.get('n_genes')}"))
    for name, m in metrics.get("perturb", {}).get("genesets", {}).items():
        rows.append(
            (
                f"gene set {name}: genes found",
                f"{m.get('n_found')} of {m.get('n_genes')} ({m.get('matched_on', '')})",
            )
        )
    ldvae = metrics.get("ldvae", {})
    if ldvae:
        rows.append(
            (
                "LDVAE held-out negative ELBO per cell",
                f"{ldvae.get('test_elbo', float('nan')):.1f} ({ldvae.get('epochs_run')} epochs)",
            )
        )
    emb = metrics.get("embedding", {})
    if emb:
        rows.append(
            (
                "Leiden vs cell type, ARI (LDVAE / PCA)",
                f"{emb.get('ldvae', {}).get('leiden_ari', float('nan')):.3f} / {emb.get('pca', {}).get('leiden_ari', float('nan')):.3f}",
            )
        )
    clf = metrics.get("classifier", {})
    if clf:
        rows.append(
            (
                "classifier accuracy on the LDVAE latent [95% CI]",
                f"{pct(clf.get('accuracy'))} [{pct(clf.get('accuracy_low'))}, {pct(clf.get('accuracy_high'))}]",
            )
        )
        rows.append(
            (
                "chance (uniform) / label-permutation control",
                f"{pct(clf.get('chance_uniform'))} / {pct(clf.get('permutation_accuracy'))}",
            )
        )
        for model, acc in clf.get("baseline_accuracy", {}).items():
            rows.append((f"baseline: {model}", pct(acc)))
        rows.append(
            (
                "split grouped by source cell; source cells on both sides",
                f"{clf.get('split_grouped')}; {clf.get('n_leaked_source_cells')}",
            )
        )
        null_clf = (null_metrics or {}).get("classifier")
        if null_clf:
            rows.append(
                (
                    "null-perturbation run (profile null, every fold change 1.0): accuracy [95% CI]",
                    f"{pct(null_clf.get('accuracy'))} [{pct(null_clf.get('accuracy_low'))}, {pct(null_clf.get('accuracy_high'))}]",
                )
            )
    for name, m in metrics.get("loadings", {}).items():
        if isinstance(m, dict) and "auroc_ldvae_projected" in m:
            rows.append(
                (
                    f"{name}: gene-set recovery AUROC (LDVAE projected / best factor / PCA)",
                    f"{m['auroc_ldvae_projected']:.3f} / {m.get('auroc_ldvae_factor', float('nan')):.3f} ({m.get('best_factor')}) / "
                    f"{m.get('auroc_pca_projected', float('nan')):.3f}",
                )
            )
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def render_index(
    profile: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    state: dict[str, Any],
    names: Sequence[str],
    target: Path,
    prov: dict[str, Any] | None = None,
    null_metrics: dict[str, Any] | None = None,
) -> Path:
    """Write the report's index page: profile, params, headline numbers, provenance and links."""
    simulated = params["data"]["source"] == "simulated"
    rows = []
    for name in names:
        entry = state.get(name, {})
        status = entry.get("status", "not run")
        secs = entry.get("seconds")
        peak = entry.get("peak_rss_bytes")
        link = (
            f'<a href="{name}.html">{name}</a>'
            if (target.parent / f"{name}.html").exists()
            else name
        )
        mark = {"ok": "✔ ok", "failed": "✘ FAILED", "skipped": "✔ up to date"}.get(status, status)
        error = html.escape(entry.get("error", ""))
        rows.append(
            f"<tr class='{status}'><td>{link}</td><td>{mark}</td>"
            f"<td>{'' if secs is None else f'{secs:.0f} s'}</td>"
            f"<td>{'' if not peak else f'{peak / 1e9:.2f} GB'}</td><td><code>{error}</code></td></tr>"
        )
    flat: list[tuple[str, Any]] = []
    _flatten("", {k: v for k, v in metrics.items() if k != "provenance"}, flat)
    metric_rows = "".join(
        f"<tr><td><code>{html.escape(k)}</code></td><td>{_fmt(v)}</td></tr>" for k, v in flat
    )
    headlines = (
        "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
            for k, v in headline_rows(metrics, null_metrics)
        )
        or "<tr><td colspan=2>no numbers yet</td></tr>"
    )
    banner = (
        "<div class='banner'>SIMULATED DATA — this report is made from the built-in simulated "
        "M1-like data set, not from real cells. Numbers show what the method does, not biology.</div>"
        if simulated
        else f"<div class='real'>Data: {html.escape(str(params['data']['path']))}</div>"
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>latentshift — {html.escape(profile)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; vertical-align: top; }}
tr.failed td {{ background: #fde2e2; }}
.banner {{ background: #fff3cd; border: 2px solid #e0a800; padding: 0.8em; font-weight: bold; }}
.real {{ background: #e2f0d9; padding: 0.8em; }}
pre {{ background: #f6f6f6; padding: 1em; overflow: auto; }}
</style></head><body>
<h1>latentshift report — profile <code>{html.escape(profile)}</code></h1>
{banner}
<p>Does an interpretable generative model (LDVAE) of motor-cortex cells see a simulated disease
shift, how well can it be detected, and which latent factors carry it?</p>
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>status</th><th>time</th><th>peak memory</th><th>error</th></tr>{"".join(rows)}</table>
<p>Time: wall time of the notebook; peak memory: the high-water mark of its kernel's resident memory.</p>
{'<p><a href="sweep.html">Dose-response sweep</a></p>' if (target.parent / "sweep.html").exists() else ""}
<h2>Headline numbers</h2>
<table><tr><th>what</th><th>value</th></tr>{headlines}</table>
<details><summary>Every number in <code>metrics.json</code></summary>
<table><tr><th>metric</th><th>value</th></tr>{metric_rows}</table></details>
<h2>Provenance</h2>
<pre>{html.escape(yaml.safe_dump(prov or {}, sort_keys=False))}</pre>
<h2>Parameters (resolved)</h2>
<pre>{html.escape(yaml.safe_dump(params, sort_keys=False))}</pre>
<p>Generated {_dt.datetime.now().isoformat(timespec="seconds")}.</p>
</body></html>
"""
    return artifacts.write_text(page, target)

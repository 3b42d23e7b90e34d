"""Run folder layout, atomic writes and ``metrics.json``.

Every artifact is written to a temporary name in the same folder and renamed into place,
so a crash never leaves a half-written file that the next step would trust.

Layout of one run (``<profile>`` is the params file's stem)::

    runs/<profile>/cells.h5ad        01_data
    runs/<profile>/perturbed.h5ad    02_perturb
    runs/<profile>/model/            03_ldvae (scvi-tools save)
    runs/<profile>/history.csv       03_ldvae
    runs/<profile>/latent.h5ad       03_ldvae
    runs/<profile>/metrics.json      every step adds its section
    runs/<profile>/notebooks/        executed notebooks
    reports/<profile>/               rendered HTML
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latentshift.errors import MissingArtifactError

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
STATE_FILE = "state.json"  # the runner's status, stamp, time and peak memory per notebook


def project_root(start: str | Path | None = None) -> Path:
    """The project folder: the nearest folder at or above ``start`` holding ``pyproject.toml``
    and ``notebooks/``. Falls back to the current folder.

    Parameters
    ----------
    start
        Where to start looking (default: the current working directory).
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return here


def notebooks(root: Path) -> list[Path]:
    """The numbered notebooks ``notebooks/NN_*.ipynb`` of the project, in order."""
    return sorted(Path(root, "notebooks").glob("[0-9][0-9]_*.ipynb"))


def load_state(run_folder: str | Path) -> dict[str, Any]:
    """The runner's record of a run folder (``state.json``): status and stamp per notebook."""
    path = Path(run_folder) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def run_dir(
    profile: str, run_dir: str | Path | None = None, root: str | Path | None = None
) -> Path:
    """The run folder of ``profile`` (created if missing).

    Parameters
    ----------
    profile
        Profile name, e.g. ``"demo"``.
    run_dir
        An explicit folder (the runner injects one); a relative one is taken from the project
        root, as every params path is (a notebook runs in ``notebooks/``, ``make`` in the root:
        both must find the same folder). ``None`` gives ``<root>/runs/<profile>``.
    root
        Project root; default :func:`project_root`.
    """
    folder = resolve_path(run_dir, root) if run_dir else project_root(root) / "runs" / profile
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def resolve_path(path: str | Path, root: str | Path | None = None) -> Path:
    """A params path made absolute: relative paths are taken from the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root(root) / p


@contextlib.contextmanager
def atomic_path(final: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds.

    Works for files and for folders (a folder replaces any existing one at ``final``).

    Examples
    --------
    >>> with atomic_path("runs/demo/cells.h5ad") as tmp:  # doctest: +SKIP
    ...     adata.write_h5ad(tmp)
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = final.suffix if suffix is None else suffix
    fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f"{suffix}.tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()  # the writer creates it (h5py and scvi-tools refuse to overwrite some files)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written to {tmp} for {final}")  # a bug, not user input
        if final.is_dir() and not final.is_symlink():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


COUNTS_IN_X = "counts_in_X"  # uns flag: layers["counts"] was X and is restored from it on read


def same_matrix(a: Any, b: Any, chunk: int = 1 << 24) -> bool:
    """Whether two count matrices hold the same values (sparse CSR/CSC or dense).

    Identity is checked first; sparse matrices are compared structure and values chunk by
    chunk, so no array of the matrices' size is allocated.
    """
    import scipy.sparse as sp

    if a is b:
        return True
    if a is None or b is None or a.shape != b.shape:
        return False
    if sp.issparse(a) and sp.issparse(b):
        if a.format != b.format or a.nnz != b.nnz:
            return False
        for x, y in ((a.indptr, b.indptr), (a.indices, b.indices), (a.data, b.data)):
            if x is y:
                continue
            for start in range(0, len(x), chunk):
                if not np.array_equal(x[start : start + chunk], y[start : start + chunk]):
                    return False
        return True
    if sp.issparse(a) or sp.issparse(b):
        return False
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def write_h5ad(adata: AnnData, path: str | Path, *, counts: bool = True) -> Path:
    """Write an AnnData to ``.h5ad`` atomically (lzf-compressed: fast, and sparse stays sparse).

    When ``layers["counts"]`` holds the same values as ``X`` (our files keep the raw counts in
    both), the counts are stored once, in ``X``, and ``uns["counts_in_X"]`` says so;
    :func:`read_h5ad` puts the layer back as the same matrix object. This halves the file and
    the memory of reading it (at atlas scale, gigabytes).

    With ``counts=False`` neither ``X`` nor any layer is written, only the cells' and genes'
    annotations (obs, var, obsm, varm, uns): ``latent.h5ad``, whose readers need the latent,
    the loadings and per-gene summaries, not the counts.
    """
    path = Path(path)
    if not counts:
        import anndata as ad

        light = ad.AnnData(
            obs=adata.obs,
            var=adata.var,
            obsm=dict(adata.obsm),
            varm=dict(adata.varm),
            uns=dict(adata.uns),
        )
        with atomic_path(path) as tmp:
            light.write_h5ad(tmp, compression="lzf")
        log.info("wrote %s (%d cells × %d genes, no counts)", path, adata.n_obs, adata.n_vars)
        return path
    layers = adata.layers
    counts = layers["counts"] if "counts" in layers else None
    dedupe = counts is not None and same_matrix(adata.X, counts)
    if dedupe:
        del layers["counts"]
        adata.uns[COUNTS_IN_X] = True
    try:
        with atomic_path(path) as tmp:
            adata.write_h5ad(tmp, compression="lzf")
    finally:
        if dedupe:
            layers["counts"] = counts
            adata.uns.pop(COUNTS_IN_X, None)
    log.info("wrote %s (%d cells × %d genes)", path, adata.n_obs, adata.n_vars)
    return path


def read_h5ad(path: str | Path, made_by: str | None = None) -> AnnData:
    """Read an ``.h5ad`` written by :func:`write_h5ad`, restoring ``layers["counts"]``.

    Parameters
    ----------
    path
        The file.
    made_by
        The notebook that writes it; when given, a missing file raises the
        :func:`require` message naming that notebook.
    """
    import anndata as ad

    path = require(path, made_by) if made_by else Path(path)
    adata = ad.read_h5ad(path)
    if adata.uns.pop(COUNTS_IN_X, False):
        adata.layers["counts"] = adata.X  # the same object: no second copy in memory
    return adata


def write_text(text: str, path: str | Path) -> Path:
    """Write a text file atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def commit_stamp(prov: dict[str, Any] | None) -> dict[str, Any]:
    """The columns that say what a recorded row or table ran at: ``git_commit`` (12 digits,
    None when unknown) and ``git_dirty``, from a run's provenance."""
    prov = prov or {}
    return {
        "git_commit": (prov.get("git_commit") or "")[:12] or None,
        "git_dirty": prov.get("git_dirty"),
    }


def write_csv(frame: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write a pandas DataFrame to CSV atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return path


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as plain values, non-finite floats as None."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(data: Mapping[str, Any], path: str | Path) -> Path:
    """Write JSON atomically, turning numpy scalars and arrays into plain values."""
    return write_text(json.dumps(jsonable(data), indent=2, sort_keys=True) + "\n", path)


def read_metrics(run_folder: str | Path) -> dict[str, Any]:
    """The run's ``metrics.json`` as a dict (empty when there is none yet)."""
    path = Path(run_folder) / METRICS_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def update_metrics(
    run_folder: str | Path, section: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    """Replace one section of the run's ``metrics.json`` (atomically) and return the whole.

    Parameters
    ----------
    run_folder
        The run folder.
    section
        The section name, by convention the notebook's stage (``"data"``, ``"perturb"``, ...).
    values
        The numbers; numpy values are converted.
    """
    metrics = read_metrics(run_folder)
    metrics[section] = jsonable(values)
    write_json(metrics, Path(run_folder) / METRICS_FILE)
    return metrics


TIMINGS_FILE = "timings.json"


def update_timings(run_folder: str | Path, key: str, value: float) -> dict[str, Any]:
    """Record a wall time (seconds, a float) or a peak memory (bytes, an int) in ``timings.json``.

    Timings and memory live apart from ``metrics.json`` so that two runs of the same params
    give a byte-identical ``metrics.json``.
    """
    path = Path(run_folder) / TIMINGS_FILE
    timings = json.loads(path.read_text()) if path.is_file() else {}
    timings[key] = int(value) if isinstance(value, int) else round(float(value), 2)
    write_json(timings, path)
    return timings


def require(path: str | Path, made_by: str) -> Path:
    """Check that an input artifact exists, or say which notebook makes it.

    Parameters
    ----------
    path
        The artifact a step reads.
    made_by
        The notebook that writes it, e.g. ``"01_data"``.
    """
    path = Path(path)
    if not path.exists():
        raise MissingArtifactError(
            f"{path} does not exist: it is written by notebook {made_by}. Run that step first "
            f"(`make report`, or `python -m latentshift run PARAMS --from {made_by}`)."
        )
    return path


#: What each notebook reads, and which notebook writes it (the run folder's contract).
STEP_INPUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "01_data": (),
    "02_perturb": (("cells.h5ad", "01_data"),),
    "03_ldvae": (("perturbed.h5ad", "02_perturb"),),
    "04_latent_viz": (("latent.h5ad", "03_ldvae"),),
    "05_classifier": (("latent.h5ad", "03_ldvae"),),
    "06_loadings": (("latent.h5ad", "03_ldvae"), ("model", "03_ldvae")),
}


def require_inputs(run_folder: str | Path, step: str) -> None:
    """Check, before a notebook does anything, that what it reads is in the run folder.

    A notebook opened in JupyterLab before any run stops here, in its first output, with what
    to run first — not on a missing file deep inside.

    Parameters
    ----------
    run_folder
        ``runs/<profile>``.
    step
        The notebook, e.g. ``"03_ldvae"`` (a key of :data:`STEP_INPUTS`).

    Raises
    ------
    MissingArtifactError
        An input is missing; the message names it, the notebook that writes it and the fix.
    """
    folder = Path(run_folder)
    for name, made_by in STEP_INPUTS[step]:
        if not (folder / name).exists():
            raise MissingArtifactError(
                f"{step} reads {display_path(folder / name)}, which notebook {made_by} writes, "
                f"and it is not there yet. Run `make report` first (every notebook of the "
                f"profile, in order), or run the notebooks before {step} in order "
                f"(`python -m latentshift run PARAMS --from {made_by}`)."
            )


def display_path(path: str | Path, root: str | Path | None = None) -> str:
    """A path as a reader of the report should see it: relative to the project root.

    Reports and ``metrics.json`` never name a folder of the machine that made them: a path
    inside the project is shown relative to its root (``runs/demo/cells.h5ad``); a path
    outside it by its last two parts (``…/run/cells.h5ad``).
    """
    path = Path(path)
    root = project_root(root)
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return "…/" + "/".join(path.parts[-2:]) if path.is_absolute() else path.as_posix()


def save_figure(fig: Any, path: str | Path, dpi: int = 80) -> None:
    """Save a matplotlib figure as PNG, atomically (the index page shows it as a thumbnail).

    Returns nothing, so a notebook cell ending with it shows the figure, not a path.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")

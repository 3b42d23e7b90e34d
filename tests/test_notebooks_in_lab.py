"""The notebooks as a JupyterLab user runs them: the project kernel, from ``notebooks/``, with
the defaults of their ``parameters`` cells (no papermill injection).

``make setup`` registers the kernel the notebooks name (``latentshift``, "Python
(latentshift)"). The tests run in a copy of the project (notebooks, params, pyproject) in a
temporary folder, so the runs they make never touch the checkout's ``runs/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

KERNEL = "latentshift"
STEPS = ["01_data", "02_perturb", "03_ldvae", "04_latent_viz", "05_classifier", "06_loadings"]


def _kernel_or_skip() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL not in KernelSpecManager().find_kernel_specs():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the '{KERNEL}' kernel is not registered; `make setup` registers it.")
        pytest.skip(f"the '{KERNEL}' kernel is not registered (run `make setup`)")


def _project_copy(root: Path, tmp: Path) -> Path:
    proj = tmp / "project"
    shutil.copytree(root / "notebooks", proj / "notebooks")
    shutil.copytree(root / "params", proj / "params")
    shutil.copy(root / "pyproject.toml", proj / "pyproject.toml")
    return proj


def _execute(path: Path, timeout: int = 1500) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, kernel_name=KERNEL, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    return nb


def test_notebooks_name_the_project_kernel(root):
    for name in STEPS:
        spec = json.loads((root / "notebooks" / f"{name}.ipynb").read_text())["metadata"]
        assert spec["kernelspec"]["name"] == KERNEL, name


def test_a_notebook_opened_before_any_run_says_what_to_run_first(root, tmp_path):
    from nbclient.exceptions import CellExecutionError

    _kernel_or_skip()
    proj = _project_copy(root, tmp_path)
    with pytest.raises(CellExecutionError) as err:
        _execute(proj / "notebooks" / "03_ldvae.ipynb", timeout=300)
    text = str(err.value)
    assert "MissingArtifactError" in text and "make report" in text
    assert "02_perturb" in text


@pytest.mark.slow
@pytest.mark.pipeline
def test_every_notebook_runs_in_the_project_kernel_after_a_demo_run(root, tmp_path):
    _kernel_or_skip()
    proj = _project_copy(root, tmp_path)
    demo = subprocess.run(
        [sys.executable, "-m", "latentshift", "run", "params/demo.yaml"],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    by_runner = json.loads((proj / "runs" / "demo" / "metrics.json").read_text())
    for name in STEPS:
        nb = _execute(proj / "notebooks" / f"{name}.ipynb")
        errors = [
            o
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.outputs
            if o.output_type == "error"
        ]
        assert not errors, f"{name}: {errors[:1]}"
    # the notebooks' defaults are the demo profile: the same numbers as the runner's demo run
    by_lab = json.loads((proj / "runs" / "demo" / "metrics.json").read_text())
    for section in ("data", "perturb", "ldvae", "embedding", "classifier", "loadings"):
        assert by_lab[section] == by_runner[section], section

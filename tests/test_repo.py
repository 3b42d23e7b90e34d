"""Repository hygiene: notebooks without outputs, environment.yml in step with pyproject."""

from __future__ import annotations

import json
import re
import tomllib

import yaml

EXPECTED_NOTEBOOKS = [
    "01_data",
    "02_perturb",
    "03_ldvae",
    "04_latent_viz",
    "05_classifier",
    "06_loadings",
]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_notebooks_are_stored_without_outputs(root):
    notebooks = sorted((root / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [], f"{path.name} has outputs"
                assert cell.get("execution_count") is None, f"{path.name} has execution counts"


def test_notebooks_have_parameters_cell_and_closing_summary(root):
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert path.stem in EXPECTED_NOTEBOOKS, f"unexpected notebook {path.name}"
        nb = json.loads(path.read_text())
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
        assert nb["cells"][0]["cell_type"] == "markdown", f"{path.name} must open with a title cell"
        text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        assert "What this shows" in text, f"{path.name} needs a closing 'What this shows' cell"


def test_environment_yml_names_the_same_packages_as_pyproject(root):
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for r in project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((root / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    named = {_name(r) for r in pip_section if not r.startswith("-e")} | conda
    assert named == declared, (
        f"only in environment.yml: {named - declared}; only in pyproject: {declared - named}"
    )
    assert any(r.startswith("-e") for r in pip_section), (
        "environment.yml must install this package (-e .)"
    )


def test_lock_file_pins_every_dependency_exactly(root):
    lock = {}
    for line in (root / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert "==" in line, f"unpinned line in requirements.lock: {line}"
            name, version = line.split("==", 1)
            lock[_name(name)] = version
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
        assert _name(req) in lock, f"{req} is not pinned in requirements.lock"
    assert lock["torch"] == "2.13.0"


def test_every_parameter_is_visible_to_papermill(root):
    """papermill skips parameter lines it cannot parse (e.g. a second '=' in a comment), which
    would silently run a notebook on defaults; every name assigned in the cell must be injectable."""
    import ast

    import papermill as pm

    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
        assigned = {
            t.id
            for node in ast.parse("".join(cell["source"])).body
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        seen = set(pm.inspect_notebook(str(path)))
        assert assigned == seen, f"{path.name}: papermill cannot see {assigned - seen}"
        assert {"profile", "run_dir"} <= assigned, f"{path.name} must declare profile and run_dir"

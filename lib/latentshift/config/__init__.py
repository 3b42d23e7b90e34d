"""Profile parameters: defaults, loading, validation with did-you-mean errors.

A profile is a YAML file in ``params/`` (``params/demo.yaml`` → profile ``demo``). It holds
top-level *sections* (``data``, ``genesets``, ``perturbations``, ``split``, ``case_control``,
``ldvae``, ``embedding``, ``classifier``, ``loadings``) plus ``seed`` and ``design``
(``synthetic``: disease copies of normal cells; ``case_control``: the conditions of a data
set's own obs column, split by donor). Every key has a default in
:data:`DEFAULTS`; a profile only needs the keys it changes. Each notebook declares, in its
papermill ``parameters`` cell, the sections it reads; the runner injects the resolved values.

Validation happens before any notebook runs: an unknown key names the closest valid key, a
wrong type or out-of-range value names the key and what is allowed.

This package is the API (:func:`load_params`, :func:`validate`, :func:`section`, ...); its
modules hold the tables:

- :mod:`~latentshift.config.defaults` — every parameter's default (:data:`DEFAULTS`);
- :mod:`~latentshift.config.rules` — each parameter's allowed types and range (:data:`RULES`).
"""

from __future__ import annotations

import copy
import difflib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from latentshift.config.defaults import (
    DEFAULT_PERTURBATIONS,
    DEFAULTS,
    PERTURBATION_DEFAULTS,
    SCALARS,
    SECTIONS,
)
from latentshift.config.rules import (
    BOOL,
    INT,
    NONE,
    NUM,
    PERTURBATION_RULES,
    RULES,
    STR,
    Rule,
)
from latentshift.errors import ParamsError

__all__ = [
    "BOOL",
    "DEFAULTS",
    "DEFAULT_PERTURBATIONS",
    "INT",
    "NONE",
    "NUM",
    "PERTURBATION_DEFAULTS",
    "PERTURBATION_RULES",
    "RULES",
    "SCALARS",
    "SECTIONS",
    "STR",
    "ParamsError",
    "Rule",
    "defaults",
    "load_params",
    "profile_name",
    "rules",
    "section",
    "validate",
    "validate_perturbations",
]

log = logging.getLogger(__name__)

# --- helpers ---------------------------------------------------------------------------


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    if close:
        return f"did you mean '{close[0]}'?"
    return "valid keys: " + ", ".join(sorted(known))


def _check_value(where: str, value: Any, rule: Rule) -> None:
    types, ok, allowed = rule
    # bool is a subclass of int; a 'true' where a number belongs is a mistake
    is_bool = isinstance(value, bool)
    type_ok = isinstance(value, types) and (not is_bool or bool in types)
    if not type_ok:
        raise ParamsError(
            f"params key '{where}' is {value!r} ({type(value).__name__}); it must be {allowed}."
        )
    if ok is not None and not ok(value):
        raise ParamsError(f"params key '{where}' is {value!r}; it must be {allowed}.")


def _merge_section(name: str, given: Any) -> Any:
    """Merge one section's given values onto its defaults, checking keys and values."""
    default = DEFAULTS[name]
    if name == "perturbations":
        return validate_perturbations(given)
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ParamsError(
            f"params section '{name}' must be a mapping of keys to values, got {type(given).__name__}."
        )
    merged = copy.deepcopy(default)
    for key, value in given.items():
        if key not in default:
            raise ParamsError(
                f"unknown params key '{name}.{key}': {_did_you_mean(str(key), list(default))} "
                f"Fix the key in the params file (known keys of '{name}': {', '.join(default)})."
            )
        _check_value(f"{name}.{key}", value, RULES[f"{name}.{key}"])
        merged[key] = value
    return merged


def validate_perturbations(entries: Any) -> list[dict[str, Any]]:
    """Check and complete the ``perturbations`` list.

    Parameters
    ----------
    entries
        A list of mappings with at least ``name``, ``geneset``, ``direction`` and
        ``fold_change``; ``None`` gives :data:`DEFAULT_PERTURBATIONS`.

    Returns
    -------
    list of dict
        The entries with every optional key filled in.
    """
    if entries is None:
        entries = DEFAULT_PERTURBATIONS
    if not isinstance(entries, list) or not entries:
        raise ParamsError(
            "params key 'perturbations' must be a non-empty list of entries, each with "
            "name, geneset, direction (down/up) and fold_change."
        )
    out = []
    names: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"perturbations[{i}]"
        if not isinstance(entry, Mapping):
            raise ParamsError(
                f"params key '{where}' must be a mapping (name, geneset, direction, fold_change)."
            )
        merged = copy.deepcopy(PERTURBATION_DEFAULTS)
        for key, value in entry.items():
            if key not in PERTURBATION_DEFAULTS:
                raise ParamsError(
                    f"unknown params key '{where}.{key}': "
                    f"{_did_you_mean(str(key), list(PERTURBATION_DEFAULTS))} Fix the key in the params file."
                )
            _check_value(f"{where}.{key}", value, PERTURBATION_RULES[key])
            merged[key] = value
        for required in ("name", "geneset", "direction", "fold_change"):
            if merged[required] is None:
                raise ParamsError(
                    f"params entry '{where}' has no '{required}'; every perturbation needs one."
                )
        label = f"{where} ({merged['name']})"
        if merged["name"] == "normal":
            raise ParamsError(
                f"params entry '{label}': the name 'normal' is reserved for the unperturbed cells."
            )
        if merged["name"] in names:
            raise ParamsError(
                f"params entry '{label}': the name is used twice; names must be unique."
            )
        names.add(merged["name"])
        fc = merged["fold_change"]
        if merged["direction"] == "down" and fc > 1:
            raise ParamsError(
                f"params entry '{label}': direction 'down' needs fold_change <= 1 (got {fc}); "
                "use direction 'up' to raise expression."
            )
        if merged["direction"] == "up" and fc < 1:
            raise ParamsError(
                f"params entry '{label}': direction 'up' needs fold_change >= 1 (got {fc}); "
                "use direction 'down' to lower expression."
            )
        if merged["method"] == "thin" and fc > 1:
            raise ParamsError(
                f"params entry '{label}': method 'thin' can only lower counts (fold_change <= 1)."
            )
        if merged["method"] is None:
            merged["method"] = "thin" if merged["direction"] == "down" else "poisson"
        out.append(merged)
    return out


def validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a whole params mapping and fill in defaults.

    Parameters
    ----------
    raw
        The parsed YAML (top-level mapping).

    Returns
    -------
    dict
        Every section with defaults filled in.

    Raises
    ------
    ParamsError
        On an unknown key (naming the closest known one), a wrong type or a value out of range.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ParamsError(
            "a params file must hold a mapping of sections (data, perturbations, ...) at the top level."
        )
    known = list(DEFAULTS)
    for key in raw:
        if key not in DEFAULTS:
            raise ParamsError(
                f"unknown params key '{key}': {_did_you_mean(str(key), known)} "
                f"Fix the key in the params file (known sections: {', '.join(known)})."
            )
    resolved: dict[str, Any] = {}
    for key in SCALARS:
        value = raw.get(key, DEFAULTS[key])
        _check_value(key, value, RULES[key])
        resolved[key] = value
    for name in SECTIONS:
        resolved[name] = _merge_section(name, raw.get(name))
    if resolved["data"]["source"] == "h5ad" and not resolved["data"]["path"]:
        raise ParamsError(
            "params key 'data.path' is required when data.source is 'h5ad': give the .h5ad file's path."
        )
    data = resolved["data"]
    if (
        data["source"] == "simulated"
        and data["n_cells"] is not None
        and data["n_cells"] > data["simulate_n_cells"]
    ):
        raise ParamsError(
            f"params key 'data.n_cells' is {data['n_cells']}, more than the {data['simulate_n_cells']} cells the "
            f"simulator makes (data.simulate_n_cells). Lower data.n_cells to at most {data['simulate_n_cells']}, "
            "raise data.simulate_n_cells, or set data.n_cells to null to keep every cell."
        )
    _check_design(resolved)
    ldvae = resolved["ldvae"]
    if (
        ldvae["genes_before_copies"]
        and ldvae["n_top_genes"] is not None
        and ldvae["hvg_cells"] != "normal"
    ):
        raise ParamsError(
            "params key 'ldvae.genes_before_copies' chooses the LDVAE's genes before the disease "
            "copies exist, so it can rank variability on the normal cells only, but "
            f"ldvae.hvg_cells is {ldvae['hvg_cells']!r}. Set ldvae.hvg_cells to 'normal', or "
            "ldvae.genes_before_copies to false (the genes are then chosen after the copies, on "
            "every training cell)."
        )
    return resolved


def _check_design(resolved: Mapping[str, Any]) -> None:
    """Cross-key checks of the case-control design."""
    data = resolved["data"]
    n_disease, n_donors = data["simulate_disease_donors"], data["simulate_n_donors"]
    if n_disease and resolved["design"] != "case_control":
        raise ParamsError(
            f"params key 'data.simulate_disease_donors' is {n_disease}, but design is "
            f"{resolved['design']!r}: disease donors belong to the case-control design. Set "
            "design: case_control, or data.simulate_disease_donors to 0."
        )
    if resolved["real_transfer"]["path"] and resolved["design"] != "synthetic":
        raise ParamsError(
            "params key 'real_transfer.path' names a file of real cells, but design is "
            f"{resolved['design']!r}: synthetic against real trains on copies (design: "
            "synthetic). Set design: synthetic, or real_transfer.path to null (a case-control "
            "design tests its own held-out donors: case_control.transfer)."
        )
    if resolved["case_control"]["fake_groups"] and resolved["design"] != "case_control":
        raise ParamsError(
            "params key 'case_control.fake_groups' deals the donors into two fake conditions, "
            f"but design is {resolved['design']!r}. Set design: case_control, or "
            "case_control.fake_groups to false."
        )
    if data["simulate_paired"] and resolved["design"] != "case_control":
        raise ParamsError(
            "params key 'data.simulate_paired' is true, but design is "
            f"{resolved['design']!r}: a paired simulation samples donors in every condition of "
            "the case-control design. Set design: case_control, or data.simulate_paired to false."
        )
    if resolved["design"] != "case_control":
        return
    if resolved["ldvae"]["genes_before_copies"]:
        raise ParamsError(
            "params key 'ldvae.genes_before_copies' is true, but the case-control design makes no "
            "copies. Set it to false."
        )
    batch = resolved["ldvae"]["batch_key"]
    if batch is not None and batch in ("donor_id", data["donor_column"], "sample_id"):
        raise ParamsError(
            f"params key 'ldvae.batch_key' is {batch!r}, but in the case-control design every "
            "donor has one condition: a per-donor (or per-sample) covariate can absorb the "
            "disease difference itself, and a held-out donor has no coefficient of its own. Set "
            "ldvae.batch_key to null (or to a covariate that crosses the conditions, such as a "
            "sequencing batch holding cases and controls)."
        )
    if data["source"] != "simulated":
        return
    n_entries = len(resolved["perturbations"])
    if data["simulate_paired"]:
        if n_donors < 2:
            raise ParamsError(
                "a simulated paired design (data.simulate_paired: true) needs at least 2 donors, "
                f"each sampled in every condition; data.simulate_n_donors is {n_donors}."
            )
        return
    if n_disease < 2 * n_entries or n_donors - n_disease < 2:
        raise ParamsError(
            f"a simulated case-control data set needs at least 2 disease donors per disease "
            f"({n_entries} perturbation entr{'y' if n_entries == 1 else 'ies'}: at least "
            f"{2 * n_entries}) and at least 2 control donors; data.simulate_n_donors is {n_donors} "
            f"and data.simulate_disease_donors {n_disease}. Raise data.simulate_n_donors (e.g. 12) "
            "and set data.simulate_disease_donors to about half of it."
        )


def section(name: str, given: Mapping[str, Any] | list | None = None) -> Any:
    """Resolve one section for a notebook: its defaults overlaid with ``given``.

    Notebooks call this on their injected parameters so that a notebook opened in JupyterLab
    with empty parameters gets the defaults.

    Parameters
    ----------
    name
        A section name from :data:`SECTIONS`.
    given
        The values to overlay (a mapping, or the list for ``perturbations``).
    """
    if name not in SECTIONS:
        raise ParamsError(f"unknown params section '{name}': {_did_you_mean(name, list(SECTIONS))}")
    return _merge_section(name, given)


def load_params(path: str | Path) -> dict[str, Any]:
    """Read and validate a profile YAML file (parsed as data only, with ``yaml.safe_load``).

    Parameters
    ----------
    path
        The profile file, e.g. ``params/demo.yaml``.

    Returns
    -------
    dict
        The validated params with defaults filled in.
    """
    path = Path(path)
    if not path.is_file():
        profiles = (
            sorted(p.name for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        )
        hint = f" Profiles in {path.parent}: {', '.join(profiles)}." if profiles else ""
        raise ParamsError(f"params file '{path}' does not exist.{hint}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"params file '{path}' is not valid YAML: {exc}") from None
    try:
        return validate(raw)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None


def profile_name(path: str | Path) -> str:
    """The profile name of a params file: its stem (``params/demo.yaml`` → ``demo``)."""
    return Path(path).stem

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
"""

from __future__ import annotations

import copy
import difflib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from latentshift.errors import ParamsError

log = logging.getLogger(__name__)

#: The default perturbation entries: ALS genes down, HD genes up (the original study's design).
DEFAULT_PERTURBATIONS: list[dict[str, Any]] = [
    {"name": "ALS", "geneset": "KEGG_ALS_PATHWAY", "direction": "down", "fold_change": 0.5},
    {"name": "HD", "geneset": "HD_CORTEX_UP", "direction": "up", "fold_change": 2.0},
]

#: Defaults of one perturbation entry (``name``, ``geneset``, ``direction``, ``fold_change``
#: are required in a profile's entries).
PERTURBATION_DEFAULTS: dict[str, Any] = {
    "name": None,
    "geneset": None,
    "direction": None,
    "fold_change": None,
    "method": None,  # None: "thin" for down, "poisson" for up
    "target_cell_types": None,  # None: all cells
    "penetrance": 1.0,
    "lfc_sd": 0.0,
}

#: Every parameter with its default. These are the demo profile's sizes.
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "design": "synthetic",  # "synthetic" (copies shifted by the perturbations) or "case_control"
    "data": {
        "source": "simulated",  # "simulated" or "h5ad"
        "path": None,  # the .h5ad file when source is "h5ad" (relative to the project root)
        "url": None,  # where `make data` downloads the file from
        "sha256": None,  # its checksum
        "simulate_n_cells": 3000,  # cells the simulator makes
        "simulate_n_genes": 3000,  # genes the simulator makes (disease-set and marker genes included)
        "composition": "m1",  # simulated cell types: "m1" (the HCA M1 file, 90 % neurons) or "tissue"
        "simulate_n_donors": 4,  # donors the simulator draws (the M1 atlas has 4)
        # case-control simulation (design: case_control): this many of the donors carry the
        # perturbations' shifts (one disease per entry, donors dealt round-robin), each donor's
        # fold change spread by exp(N(0, simulate_donor_lfc_sd)) around the entry's
        "simulate_disease_donors": 0,
        # paired: every simulated donor is sampled in every condition (a stimulation, before and
        # after); its nuclei are dealt into a control sample and one sample per entry
        "simulate_paired": False,
        "simulate_donor_lfc_sd": 0.0,
        # a composition shift: disease donors (paired: disease samples) lose this share of
        # each named cell type's nuclei, e.g. {L5 ET: 0.5} (ALS motor cortex loses L5 ET neurons)
        "simulate_disease_type_loss": {},
        # sd of each simulated donor's log effect on each gene (0.1: the calibrated M1's
        # donors, close to each other); larger gives donors an identity a classifier can learn
        "simulate_donor_gene_sd": 0.1,
        "symbol_column": None,  # var column with gene symbols; None: feature_name if present, else var_names
        "cell_type_column": "cell_type",
        # cells whose cell type (or, in the case-control design, donor) is NaN, empty or one of
        # these values are left out in 01 (at most max_unlabelled_fraction of them; above it 01 stops)
        "unlabelled_values": [],
        "max_unlabelled_fraction": 0.05,
        "donor_column": "donor_id",
        # donors left out of the data right after loading (e.g. the donors a real_transfer
        # file holds, so that the synthetic side never sees them)
        "exclude_donors": [],
        "min_genes": 100,  # QC: minimum genes detected per cell
        "min_cells": 3,  # QC: minimum cells expressing a gene
        "n_cells": 2000,  # seeded subsample after QC; None keeps all cells
        "stratify": True,  # subsample stratified by cell type
    },
    "genesets": {
        "gmt": "params/genesets/disease_genesets.gmt",
        "min_found_fraction": 0.5,  # warn when a set has fewer of its genes in the data
    },
    "perturbations": DEFAULT_PERTURBATIONS,
    "split": {
        "train_fraction": 0.7,
        "grouped": True,  # keep all copies of a source cell on one side (False: the original plain split)
    },
    "case_control": {
        "condition_column": "disease",  # obs column with each nucleus's condition (CELLxGENE's)
        "control": "normal",  # its value for control donors (CELLxGENE: "normal")
        # auto: paired when every donor holds every condition (before/after a stimulation),
        # unpaired when every donor holds one (a case or a control); a mixed design is refused
        "paired": "auto",
        "split": "donor",  # "donor": no donor on both sides; "cell": a cell-level split (the leak)
        "n_folds": 4,  # leave-donors-out folds: every nucleus scored once when held out
        # synthetic versus real (05): the synthetic pipeline trained on half the control donors,
        # its classifier applied to the held-out real nuclei (an extra LDVAE training)
        "transfer": True,
        # the real-donor null: the data's donors dealt at random (seeded) into two groups of
        # (nearly) equal size, the second relabelled "fake group": no condition, known answer
        "fake_groups": False,
    },
    # synthetic against real (design: synthetic): a file of real cells in the conditions the
    # perturbations stand for, never trained on — 03 embeds them with its LDVAE and PCA, 05
    # calls them with its networks and sets the synthetic shift's direction against theirs
    "real_transfer": {
        "path": None,  # the real cells' .h5ad (relative to the project root); null: off
        "condition_column": "disease",
        "control": "normal",
        "cell_type_column": "cell_type",
        "donor_column": "donor_id",
        "symbol_column": None,  # var column with gene symbols; None: feature_name or var_names
        "null_draws": 200,  # random halves of the control cells: the null of the direction match
    },
    "ldvae": {
        "n_latent": 36,  # the reference configuration's latent size
        "n_hidden": 128,
        "n_layers": 1,
        "dropout_rate": 0.1,
        "gene_likelihood": "nb",
        "dispersion": "gene",
        "max_epochs": 400,  # a ceiling: early stopping on the validation ELBO decides
        "lr": 3e-3,
        "batch_size": 128,
        "early_stopping_patience": 20,
        "early_stopping_min_delta": 0.001,  # relative: an epoch must improve the validation ELBO by 0.1 %
        "kl_warmup_epochs": 10,  # epochs over which the KL weight rises to 1 (scvi-tools default: 400)
        "accelerator": "auto",
        "devices": "auto",
        "strategy": "auto",  # Lightning strategy, e.g. "ddp" for several GPUs
        "n_top_genes": 1000,  # None: all genes; a number: that many highly variable genes (seurat_v3)
        # label-blind by default: HVGs ranked on every training cell (the copies included, labels
        # unseen), no gene forced in. keep_perturbed_genes: true adds every disease-set gene — an
        # oracle (it knows which genes were shifted); hvg_cells: normal ranks on the normal cells only
        "hvg_cells": "all",
        "hvg_flavor": "seurat_v3",  # scanpy's ranking: "seurat_v3" or "pearson_residuals"
        "hvg_max_cells": None,  # rank on at most this many of those cells (random; atlas memory)
        "keep_perturbed_genes": False,
        "genes_before_copies": False,  # choose the LDVAE's genes in 02, before the copies (atlas memory)
        "likelihood_impl": "zero_aware",  # NB reconstruction term: "zero_aware" (same model, faster) or "dense"
        "batch_key": None,  # obs column of a batch covariate (e.g. "donor_id"): scvi-tools' batch_key
        "use_observed_lib_size": False,  # LinearSCVI's default: the library size is a latent variable
        "snapshot_every": 25,  # keep the latent every this many epochs (05: accuracy vs epoch); null: off
        # large n: an "epoch" of at most this many training cells (random minibatches, a fresh
        # draw each epoch), so patience, warm-up and snapshots mean the same amount of training
        # at 4k and at 240k cells; null: an epoch is one pass over the training cells
        "epoch_cells": None,
        "validation_cells": None,  # at most this many cells in the validation part (null: 10 %)
    },
    "embedding": {
        "n_neighbors": 15,
        "leiden_resolution": 1.0,
    },
    "classifier": {
        "hidden_layers": [32],
        "max_epochs": 300,
        "lr": 1e-2,
        "weight_decay": 1e-4,
        "validation_fraction": 0.15,
        "patience": 20,
        "n_bootstrap": 500,
        # the label null: relabellings within units (paired) or of whole units (unpaired); every
        # distinct one when the design has at most this many (mean and spread reported)
        "n_permutations": 10,
    },
    "cell_types": {
        "subsample_size": 20,  # source cells per condition in each subsample (Augur's default)
        "n_subsamples": 20,  # subsamples per cell type (the AUC's spread is over these)
        "n_folds": 3,  # cross-validation folds, grouped by source cell
        "n_permutations": 20,  # label-permuted subsamples per cell type (the null)
        "e_permutations": 1000,  # permutations of the E-test (smallest p: 1 / 1001)
        # paired: the design's null (labels swapped within units when the conditions sit within
        # them, whole units relabelled when not); unpaired: synthetic halves, labels over all cells
        "e_design": "paired",
        "e_max_cells": 2000,  # E-distance on at most this many pairs per test (memory)
    },
    "report": {
        "show_code": False,  # pages open with the code hidden (one click shows it)
        "null_profile": None,  # the profile whose run is this one's null control (index page)
        "oracle_profile": None,  # the profile whose run is this one's oracle (it knows the shifted genes)
    },
    "loadings": {
        "n_top_genes": 15,
        # shifts from "test" cells (held out from the LDVAE) or "all" cells; auto: test for a
        # held-out fraction of source cells, all for leave-donors-out folds (every donor needed)
        "cells": "auto",
    },
}

#: top-level keys that hold one value, not a section
SCALARS: tuple[str, ...] = ("seed", "design")
SECTIONS: tuple[str, ...] = tuple(k for k in DEFAULTS if k not in SCALARS)


# --- rules -----------------------------------------------------------------------------

Rule = tuple[tuple[type, ...], Callable[[Any], bool] | None, str]


def _pos(x: Any) -> bool:
    return x > 0


def _nonneg(x: Any) -> bool:
    return x >= 0


def _open01(x: Any) -> bool:
    return 0 < x < 1


def _closed01(x: Any) -> bool:
    return 0 <= x <= 1


def _half_open01(x: Any) -> bool:
    return 0 < x <= 1


def _one_of(*choices: Any) -> Callable[[Any], bool]:
    return lambda x: x in choices


INT = (int,)
NUM = (int, float)
STR = (str,)
BOOL = (bool,)
NONE = (type(None),)

RULES: dict[str, Rule] = {
    "seed": (INT, _nonneg, "a whole number >= 0"),
    "design": (
        STR,
        _one_of("synthetic", "case_control"),
        "'synthetic' (disease copies of normal cells, shifted by the perturbations) or "
        "'case_control' (the conditions of an obs column such as CELLxGENE's disease, split by donor)",
    ),
    "data.source": (STR, _one_of("simulated", "h5ad"), "'simulated' or 'h5ad'"),
    "data.path": (STR + NONE, None, "a path to an .h5ad file, or null"),
    "data.url": (STR + NONE, None, "a URL, or null"),
    "data.sha256": (STR + NONE, None, "a hex SHA-256 checksum, or null"),
    "data.simulate_n_cells": (INT, lambda x: x >= 50, "a whole number >= 50"),
    "data.simulate_n_genes": (INT, lambda x: x >= 50, "a whole number >= 50"),
    "data.composition": (
        STR,
        _one_of("m1", "tissue"),
        "'m1' (the HCA M1 file's FACS-sorted nuclei, 90 % neurons) or 'tissue' (Bakken 2021)",
    ),
    "data.simulate_n_donors": (INT, lambda x: x >= 1, "a whole number >= 1"),
    "data.simulate_disease_donors": (INT, _nonneg, "a whole number >= 0"),
    "data.simulate_paired": (BOOL, None, "true or false"),
    "data.simulate_donor_lfc_sd": (NUM, _nonneg, "a number >= 0"),
    "data.simulate_disease_type_loss": (
        (dict,),
        lambda x: all(
            isinstance(k, str) and isinstance(v, int | float) and 0 <= v < 1 for k, v in x.items()
        ),
        "a mapping of cell type to the share of its nuclei disease donors lose, each from 0 to 1 "
        "(below 1), e.g. {L5 ET: 0.5}",
    ),
    "data.simulate_donor_gene_sd": (NUM, _nonneg, "a number >= 0"),
    "data.max_unlabelled_fraction": (NUM, _closed01, "a number from 0 to 1"),
    "data.unlabelled_values": (
        (list,),
        lambda x: all(isinstance(v, str) for v in x),
        "a list of label values that mean 'no label', e.g. [unknown]",
    ),
    "data.symbol_column": (STR + NONE, None, "a column name of .var, or null"),
    "data.cell_type_column": (STR, None, "a column name of .obs"),
    "data.donor_column": (STR + NONE, None, "a column name of .obs, or null"),
    "data.exclude_donors": (
        (list,),
        lambda x: all(isinstance(v, str | int) for v in x),
        "a list of donor ids, e.g. ['101', '107']",
    ),
    "data.min_genes": (INT, _nonneg, "a whole number >= 0"),
    "data.min_cells": (INT, _nonneg, "a whole number >= 0"),
    "data.n_cells": (INT + NONE, lambda x: x is None or x >= 10, "a whole number >= 10, or null"),
    "data.stratify": (BOOL, None, "true or false"),
    "genesets.gmt": (STR, None, "a path to a GMT file"),
    "genesets.min_found_fraction": (NUM, _closed01, "a number from 0 to 1"),
    "split.train_fraction": (NUM, _open01, "a number strictly between 0 and 1"),
    "split.grouped": (BOOL, None, "true or false"),
    "case_control.condition_column": (STR, None, "a column name of .obs (CELLxGENE: disease)"),
    "case_control.control": (STR, None, "the condition column's value for controls (e.g. normal)"),
    "case_control.split": (
        STR,
        _one_of("donor", "cell"),
        "'donor' (no donor on both sides of a split) or 'cell' (a cell-level split, which lets a "
        "classifier recognise donors: shown only as the leak's measurement)",
    ),
    "case_control.paired": (
        STR + BOOL,
        lambda x: x in ("auto", True, False),
        "auto (paired when every donor holds every condition, unpaired when each holds one), "
        "true or false",
    ),
    "case_control.n_folds": (INT, lambda x: x >= 2, "a whole number >= 2"),
    "case_control.transfer": (BOOL, None, "true or false"),
    "case_control.fake_groups": (BOOL, None, "true or false"),
    "real_transfer.path": (STR + NONE, None, "a path to an .h5ad file of real cells, or null"),
    "real_transfer.condition_column": (STR, None, "a column name of the real file's .obs"),
    "real_transfer.control": (STR, None, "the condition column's value for controls"),
    "real_transfer.cell_type_column": (STR, None, "a column name of the real file's .obs"),
    "real_transfer.donor_column": (STR, None, "a column name of the real file's .obs"),
    "real_transfer.symbol_column": (
        STR + NONE,
        None,
        "a column name of the real file's .var, or null",
    ),
    "real_transfer.null_draws": (INT, lambda x: x >= 10, "a whole number >= 10"),
    "ldvae.n_latent": (INT, lambda x: x >= 1, "a whole number >= 1"),
    "ldvae.n_hidden": (INT, lambda x: x >= 1, "a whole number >= 1"),
    "ldvae.n_layers": (INT, lambda x: x >= 1, "a whole number >= 1"),
    "ldvae.dropout_rate": (NUM, lambda x: 0 <= x < 1, "a number from 0 up to (not including) 1"),
    "ldvae.gene_likelihood": (STR, _one_of("nb", "zinb", "poisson"), "'nb', 'zinb' or 'poisson'"),
    "ldvae.dispersion": (
        STR,
        _one_of("gene", "gene-batch", "gene-label", "gene-cell"),
        "'gene', 'gene-batch', 'gene-label' or 'gene-cell'",
    ),
    "ldvae.max_epochs": (INT, lambda x: x >= 1, "a whole number >= 1"),
    "ldvae.lr": (NUM, _pos, "a number > 0"),
    "ldvae.batch_size": (INT, lambda x: x >= 2, "a whole number >= 2"),
    "ldvae.early_stopping_patience": (
        INT + NONE,
        lambda x: x is None or x >= 1,
        "a whole number >= 1, or null to turn early stopping off",
    ),
    "ldvae.early_stopping_min_delta": (
        NUM,
        lambda x: 0 <= x < 0.1,
        "a number from 0 up to 0.1 (a share of the best validation ELBO, e.g. 0.001)",
    ),
    "ldvae.kl_warmup_epochs": (
        INT + NONE,
        lambda x: x is None or x >= 0,
        "a whole number >= 0, or null for scvi-tools' default (400)",
    ),
    "ldvae.accelerator": (
        STR,
        _one_of("auto", "cpu", "gpu", "cuda", "mps"),
        "'auto', 'cpu', 'gpu', 'cuda' or 'mps'",
    ),
    "ldvae.devices": (
        STR + INT + (list,),
        None,
        "'auto', a number of devices, or a list of device ids",
    ),
    "ldvae.strategy": (
        STR,
        None,
        "a Lightning strategy name such as 'auto', 'ddp' or 'ddp_find_unused_parameters_true'",
    ),
    "ldvae.n_top_genes": (
        INT + NONE,
        lambda x: x is None or x >= 10,
        "a whole number >= 10, or null for all genes",
    ),
    "ldvae.hvg_cells": (
        STR,
        _one_of("all", "normal"),
        "'all' (every training cell, labels unseen: what a user with unlabelled nuclei does) or "
        "'normal' (the normal training cells only)",
    ),
    "ldvae.hvg_flavor": (
        STR,
        _one_of("seurat_v3", "pearson_residuals"),
        "'seurat_v3' (scanpy's highly_variable_genes on counts) or 'pearson_residuals' "
        "(scanpy.experimental's analytic Pearson residuals)",
    ),
    "ldvae.hvg_max_cells": (
        INT + NONE,
        lambda x: x is None or x >= 10,
        "a whole number of cells >= 10 (e.g. 40000), or null to rank on all of them",
    ),
    "ldvae.keep_perturbed_genes": (
        BOOL,
        None,
        "true (every disease-set gene forced into the model's genes: an oracle, it knows which "
        "genes were shifted) or false (label-blind)",
    ),
    "ldvae.genes_before_copies": (BOOL, None, "true or false"),
    "ldvae.batch_key": (STR + NONE, None, "a column name of .obs (e.g. donor_id), or null"),
    "ldvae.use_observed_lib_size": (BOOL, None, "true or false"),
    "ldvae.snapshot_every": (
        INT + NONE,
        lambda x: x is None or x >= 1,
        "a whole number of epochs >= 1, or null for no snapshots",
    ),
    "ldvae.epoch_cells": (
        INT + NONE,
        lambda x: x is None or x >= 2,
        "a whole number of cells >= 2 (e.g. 50000), or null for a full pass over the training cells",
    ),
    "ldvae.validation_cells": (
        INT + NONE,
        lambda x: x is None or x >= 1,
        "a whole number of cells >= 1 (e.g. 10000), or null for 10 % of the training cells",
    ),
    "ldvae.likelihood_impl": (
        STR,
        _one_of("dense", "zero_aware"),
        "'zero_aware' (scvi-tools' NB likelihood computed only where needed; the same model) "
        "or 'dense' (scvi-tools' own term)",
    ),
    "embedding.n_neighbors": (INT, lambda x: x >= 2, "a whole number >= 2"),
    "embedding.leiden_resolution": (NUM, _pos, "a number > 0"),
    "classifier.hidden_layers": (
        (list,),
        lambda x: all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in x),
        "a list of layer widths, e.g. [7] (may be empty for no hidden layer)",
    ),
    "classifier.max_epochs": (INT, lambda x: x >= 1, "a whole number >= 1"),
    "classifier.lr": (NUM, _pos, "a number > 0"),
    "classifier.weight_decay": (NUM, _nonneg, "a number >= 0"),
    "classifier.validation_fraction": (NUM, _open01, "a number strictly between 0 and 1"),
    "classifier.patience": (INT, lambda x: x >= 1, "a whole number >= 1"),
    "classifier.n_bootstrap": (INT, lambda x: x >= 10, "a whole number >= 10"),
    "classifier.n_permutations": (INT, lambda x: x >= 1, "a whole number >= 1"),
    "cell_types.subsample_size": (INT, lambda x: x >= 4, "a whole number >= 4"),
    "cell_types.n_subsamples": (INT, lambda x: x >= 2, "a whole number >= 2"),
    "cell_types.n_folds": (INT, lambda x: x >= 2, "a whole number >= 2"),
    "cell_types.n_permutations": (INT, lambda x: x >= 2, "a whole number >= 2"),
    "cell_types.e_permutations": (INT, lambda x: x >= 19, "a whole number >= 19"),
    "cell_types.e_design": (STR, _one_of("paired", "unpaired"), "'paired' or 'unpaired'"),
    "cell_types.e_max_cells": (INT, lambda x: x >= 20, "a whole number >= 20"),
    "report.show_code": (BOOL, None, "true or false"),
    "report.null_profile": (
        STR + NONE,
        None,
        "the name of the profile whose run is this profile's null control (e.g. 'null'), or null",
    ),
    "report.oracle_profile": (
        STR + NONE,
        None,
        "the name of the profile whose run is this profile's oracle row (a setting that knows "
        "which genes were shifted, e.g. 'demo_oracle'), or null",
    ),
    "loadings.n_top_genes": (INT, lambda x: x >= 1, "a whole number >= 1"),
    "loadings.cells": (STR, _one_of("auto", "test", "all"), "'auto', 'test' or 'all'"),
}

PERTURBATION_RULES: dict[str, Rule] = {
    "name": (STR, lambda x: bool(x.strip()), "a non-empty name such as ALS"),
    "geneset": (STR, lambda x: bool(x.strip()), "a set name from the GMT file"),
    "direction": (STR, _one_of("down", "up"), "'down' or 'up'"),
    "fold_change": (NUM, _pos, "a number > 0 (1.0 is the null perturbation)"),
    "method": (
        STR + NONE,
        lambda x: x in (None, "thin", "poisson", "scale"),
        "'thin', 'poisson', 'scale', or null for the direction's default",
    ),
    "target_cell_types": (
        (list,) + NONE,
        lambda x: x is None or (len(x) > 0 and all(isinstance(t, str) for t in x)),
        "a list of cell-type names, or null for all cells",
    ),
    "penetrance": (NUM, _half_open01, "a number in (0, 1]"),
    "lfc_sd": (NUM, _nonneg, "a number >= 0"),
}


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

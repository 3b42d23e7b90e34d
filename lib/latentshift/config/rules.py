"""Validation rules: each parameter's allowed types, its range check and the words that say
what is allowed (quoted in a :class:`~latentshift.errors.ParamsError`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

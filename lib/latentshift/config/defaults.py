"""Every profile parameter's default value (the demo profile's sizes), with what it means.

:data:`DEFAULTS` holds the top-level scalars (``seed``, ``design``) and one mapping per section;
:data:`DEFAULT_PERTURBATIONS` and :data:`PERTURBATION_DEFAULTS` the perturbation entries'.
"""

from __future__ import annotations

from typing import Any

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

"""The representations the readings look at: the LDVAE and its PCA baseline.

- :mod:`~latentshift.model.ldvae` — step 03: scvi-tools ``LinearSCVI``, trained and saved;
- :mod:`~latentshift.model.ldvae_setup` — what its training hands scvi-tools: checks, optimizer,
  validation split, library-size prior;
- :mod:`~latentshift.model.gene_choice` — which genes it reads, chosen without the answer;
- :mod:`~latentshift.model.nb_likelihood`, :mod:`~latentshift.model.nb_autograd` — its
  zero-aware negative-binomial term and the autograd function behind it;
- :mod:`~latentshift.model.training_monitor` — progress, convergence stopping, the curves;
- :mod:`~latentshift.model.embedding` — PCA, neighbours, UMAP, Leiden (step 04);
- :mod:`~latentshift.model.features` — what the baselines read besides the latent.
"""

__all__ = [
    "embedding",
    "features",
    "gene_choice",
    "ldvae",
    "ldvae_setup",
    "nb_autograd",
    "nb_likelihood",
    "training_monitor",
]

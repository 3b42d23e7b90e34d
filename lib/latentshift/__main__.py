"""``python -m latentshift`` — the pipeline runner's command line."""

from latentshift.pipeline import main

raise SystemExit(main())

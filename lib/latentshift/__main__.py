"""``python -m latentshift`` — the command line (:mod:`latentshift.cli`)."""

from latentshift.cli import main

raise SystemExit(main())

"""``python -m latentshift`` — the command line (:mod:`latentshift.run.cli`)."""

from latentshift.run.cli import main

raise SystemExit(main())

"""`python -m chaos`: the toolkit's command line."""

from chaos.cli import main

raise SystemExit(main())

"""`python -m pycosim.cli`: the `pycosim` command."""

from . import main

raise SystemExit(main())

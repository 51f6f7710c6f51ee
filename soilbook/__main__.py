"""``python -m soilbook`` — the same as the ``soilbook`` command."""

from soilbook.cli import main

raise SystemExit(main())

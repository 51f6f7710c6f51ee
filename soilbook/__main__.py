"""``python -m soilbook`` — the same as the ``soilbook`` command."""

from soilbook.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m gateway``: the same front door as the ``gateway`` console script."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())

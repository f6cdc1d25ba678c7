"""``python -m unitlens ...``: the same program as the ``unitlens`` command (``torchrun -m unitlens`` too)."""

from __future__ import annotations

import sys

from unitlens.cli import main

if __name__ == "__main__":
    sys.exit(main())

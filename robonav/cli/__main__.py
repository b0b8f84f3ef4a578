"""``python -m robonav.cli ...``: the same as the ``robonav`` console script."""

from __future__ import annotations

import sys

from robonav.cli import main

if __name__ == "__main__":
    sys.exit(main())

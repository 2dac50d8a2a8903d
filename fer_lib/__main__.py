"""``python -m fer_lib``: see :mod:`fer_lib.cli`."""

import sys

from fer_lib.cli import main

if __name__ == "__main__":
    sys.exit(main())

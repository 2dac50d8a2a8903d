"""``python -m fer_lib.report``: see :mod:`fer_lib.report.build`."""

import sys

from fer_lib.report.build import main

sys.exit(main())

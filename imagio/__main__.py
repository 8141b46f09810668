"""``python -m imagio ...``: the same command line as the ``imagio`` script (`imagio.cli.main`)."""

import sys

from .cli import main

sys.exit(main())

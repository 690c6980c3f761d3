"""``python -m coinswarm.cli``: the same as the ``coinswarm`` command."""

import sys

from coinswarm.cli.main import main

sys.exit(main())

"""``python -m rnnbridge``: the ``rnnbridge`` command."""

import sys

from rnnbridge.cli import main

sys.exit(main())

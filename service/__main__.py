"""``python -m service``: the ``rnnbridge`` command."""

import sys

from .cli import main

sys.exit(main())

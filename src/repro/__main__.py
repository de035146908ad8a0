"""``python -m repro``: the ``repro`` command."""

import sys

from repro.cli import main

sys.exit(main())

"""``python -m homeiq.cli``: the same as the ``homeiq`` command."""

import sys

from homeiq.cli import main

sys.exit(main())

"""``python -m bsopt.cli``: the same as the ``bsopt`` command."""

import sys

from bsopt.cli import main

sys.exit(main())

"""``python -m bsopt`` runs the command line."""

import sys

from bsopt.cli import main

sys.exit(main())

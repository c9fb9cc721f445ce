"""``python -m maskx``: see ``maskx.cli``."""

import sys

from maskx.cli import main

sys.exit(main())

"""``python -m outdial``: the same as the ``outdial`` command."""

import sys

from outdial.cli import main

sys.exit(main())

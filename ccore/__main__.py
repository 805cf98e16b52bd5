"""`python -m ccore`: the same as the `ccore` command."""

import sys

from ccore.cli import main

sys.exit(main())

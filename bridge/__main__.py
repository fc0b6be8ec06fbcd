"""`python -m bridge ...` is the `telerapat` command."""

import sys

from bridge.cli import main

sys.exit(main())

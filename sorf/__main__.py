"""`python -m sorf`: the same as the `sorf` command."""

import sys

from .cli import main

sys.exit(main())

"""`python -m gridwatch.cli`, the same as the `gridwatch` command."""

import sys

from gridwatch.cli.main import main

sys.exit(main())

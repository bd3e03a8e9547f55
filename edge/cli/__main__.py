"""``python -m emopi.edge.cli``: the `emopi` command."""

import sys

from emopi.edge.cli import main

sys.exit(main())

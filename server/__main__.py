"""`python -m server` = `poolpilot`."""

import sys

from server.cli import main

sys.exit(main())

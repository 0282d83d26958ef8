"""`python -m poolpilot.server` = `poolpilot`."""

import sys

from poolpilot.server.shell.cli import main

sys.exit(main())

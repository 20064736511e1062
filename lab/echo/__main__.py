"""`python -m lab.echo`: see lab.echo.cli."""

import sys

from lab.echo.cli import main

sys.exit(main())

"""`python -m mlops.cli`: the spelling the workflows use where the `mlops` script is not on PATH."""

import sys

from mlops.cli import main

sys.exit(main())

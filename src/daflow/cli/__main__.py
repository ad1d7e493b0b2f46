"""``python -m daflow.cli``."""

import sys

from daflow.cli import main

sys.exit(main())

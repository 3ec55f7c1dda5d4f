"""Lets ``python -m chatlab`` run the command line."""

import sys

from .cli import main

sys.exit(main())

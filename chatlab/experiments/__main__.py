"""``python -m chatlab.experiments [OUT_DIR] [--quick] [--no-figures] [--replot]``."""

from .cli import main

raise SystemExit(main())

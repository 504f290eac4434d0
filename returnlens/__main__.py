"""``python -m returnlens`` (what ``torchrun -m returnlens`` runs)."""

import sys

from returnlens.cli import main

sys.exit(main())

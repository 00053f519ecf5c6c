"""``python -m mmtrack_kd`` (also what ``torchrun -m mmtrack_kd`` runs)."""

import sys

from mmtrack_kd.cli import main

sys.exit(main())

"""``python -m mmtrack_kd.experiments``: the same as ``mmtrack-kd experiments``."""

from mmtrack_kd.experiments.command import main

raise SystemExit(main())

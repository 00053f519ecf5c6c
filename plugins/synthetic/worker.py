"""Child-process entry of parallel generation: ``python -m plugins.synthetic.worker``.

Reads one JSON request from stdin (``root``, ``layout``, ``generation`` options and ``tasks``,
a list of ``[split, index]``), generates those sequences and prints their summaries as a JSON
list on stdout. Used by :func:`plugins.synthetic.generate.write_root`; not a user command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2

from plugins.synthetic.generate import generate_sequence


def main() -> int:
    cv2.setNumThreads(1)  # the worker processes are the parallelism
    request = json.loads(sys.stdin.read())
    root = Path(request["root"])
    summaries = [
        generate_sequence(root, request["layout"], split, int(index), request["generation"])
        for split, index in request["tasks"]
    ]
    sys.stdout.write(json.dumps(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())

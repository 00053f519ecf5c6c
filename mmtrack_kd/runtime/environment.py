"""``env.json``: the software and hardware a run used, written into its run folder."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, Iterable

import timm
import torch

from mmtrack_kd import __version__


def environment(plugins: Iterable[Any] = ()) -> dict[str, Any]:
    """Versions of Python, torch and timm, the platform, the CUDA devices, and ``plugins``
    (each with ``name``, ``distribution``, ``version``, ``registers`` and ``error``, as
    :class:`mmtrack_kd.plugins.PluginInfo` has them)."""
    return {
        "mmtrack_kd": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "plugins": [
            {"name": info.name, "distribution": info.distribution, "version": info.version,
             "registers": info.registers, "error": info.error}
            for info in plugins
        ],
    }


def write_env(run_dir: Path, plugins: Iterable[Any] = ()) -> None:
    """Write :func:`environment` to ``run_dir/env.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "env.json").write_text(json.dumps(environment(plugins), indent=2))

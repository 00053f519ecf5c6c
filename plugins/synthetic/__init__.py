"""The ``synthetic`` dataset plugin: generated multi-modal sequences in the real layouts.

A generator writes textured targets, look-alike distractors and occluders over cluttered
backgrounds, in the on-disk layout of LasHeR (RGB-T), DepthTrack (RGB-D) or VisEvent (RGB-E),
with spells in which only one stream shows the target; reading goes through the real dataset
plugin of that layout and the real modality adapters. Entry point: ``synthetic =
"plugins.synthetic"``.

Modules:

- :mod:`~plugins.synthetic.options`: the plugin's options (``layout``, sizes, ``seed``,
  ``content`` knobs).
- :mod:`~plugins.synthetic.scene`: one sequence's random plan (objects, motion, spells).
- :mod:`~plugins.synthetic.render`: per-frame rendering of RGB, thermal, depth and events.
- :mod:`~plugins.synthetic.layouts`: writers of the three real layouts and their attributes.
- :mod:`~plugins.synthetic.generate`: whole roots: parallel, atomic, with a manifest, and the
  per-sequence truth files (spells, per-frame dominant stream, every object's boxes).
- :mod:`~plugins.synthetic.worker`: the child-process entry of parallel generation.
- :mod:`~plugins.synthetic.plugin`: :class:`SyntheticDataset`, delegating to the real plugin.
- :mod:`~plugins.synthetic.preview`: the contact sheet of ``mmtrack-kd synth --preview``.
- :mod:`~plugins.synthetic.command`: the ``mmtrack-kd synth`` command this plugin registers.
"""

from __future__ import annotations

from typing import Callable

from mmtrack_kd import hookimpl
from plugins.synthetic import command
from plugins.synthetic.plugin import SyntheticDataset

__all__ = ["SyntheticDataset"]


@hookimpl
def mmtrack_kd_register_datasets(register: Callable[[type], None]) -> None:
    """Register :class:`SyntheticDataset` as ``synthetic``."""
    register(SyntheticDataset)


@hookimpl
def mmtrack_kd_register_commands(register: Callable[..., None]) -> None:
    """Register ``mmtrack-kd synth`` (:mod:`plugins.synthetic.command`)."""
    register(command.NAME, command.add_arguments, command.run, help=command.HELP)

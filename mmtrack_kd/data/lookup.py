"""The installed plugins, for a plugin that builds on another one.

The ``synthetic`` dataset reads its data through the real plugin of its layout, and the
``folder`` dataset lists the frame files of the modality it carries: both find that plugin by
name in :func:`installed_plugins` (``.dataset(name)``, ``.modality(name)``) and never import
another plugin package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmtrack_kd.plugins import Registry


def installed_plugins() -> Registry:
    """The registry of the installed plugins (loaded once per process): ``.dataset(name)`` and
    ``.modality(name)`` give a registered class, and an unknown name is a ``PluginError`` that
    lists what is installed."""
    # The registry is built from this package's interfaces (mmtrack_kd.plugins imports them),
    # so it is imported when first asked for: at module top it would be an import cycle.
    from mmtrack_kd.plugins import default_registry

    return default_registry()

"""Hook specifications: what a plugin may register.

A plugin is a module (or object) listed under the ``mmtrack_kd`` entry-point group that
implements one or more of these hooks with :data:`hookimpl`. Each hook receives a ``register``
callback, so a plugin registers zero, one or many things without return-value conventions::

    from mmtrack_kd import hookimpl

    @hookimpl
    def mmtrack_kd_register_modalities(register):
        register(NearInfraredAdapter)

A plugin may also bring its own ``mmtrack-kd`` sub-command (``mmtrack_kd_register_commands``).
"""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT_NAME = "mmtrack_kd"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def mmtrack_kd_register_modalities(register: Callable[[type], None]) -> None:
    """Register modality adapters: subclasses of ``mmtrack_kd.data.ModalityAdapter``."""


@hookspec
def mmtrack_kd_register_datasets(register: Callable[[type], None]) -> None:
    """Register dataset plugins: subclasses of ``mmtrack_kd.data.DatasetPlugin``."""


@hookspec
def mmtrack_kd_register_protocols(register: Callable[[type], None]) -> None:
    """Register scoring protocols: subclasses of ``mmtrack_kd.evaluation.protocols.Protocol``
    that construct without arguments; a dataset plugin names one in its ``protocol``."""


@hookspec
def mmtrack_kd_register_commands(register: Callable[..., None]) -> None:
    """Register ``mmtrack-kd`` sub-commands:
    ``register(name, add_arguments, run, help="...")``.

    ``add_arguments(parser)`` adds the command's flags to its ``argparse.ArgumentParser``;
    ``run(args)`` does the work with the parsed ``argparse.Namespace`` and returns the exit
    status (``None`` is 0). A user error raised by ``run`` (an ``MmtrackError`` of
    ``mmtrack_kd.data``, such as ``DataError``) ends the command with one message and exit
    status 2, as it does for the built-in commands.
    """

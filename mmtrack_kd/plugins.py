"""Plugin discovery and the registries of modality adapters, dataset plugins, scoring protocols
and commands.

Every plugin, the built-in ones included, is an entry point of the ``mmtrack_kd`` group, so the
path a third-party package takes is the path every run takes. The environment variable
``MMTRACK_KD_PLUGINS`` (comma-separated entry-point names; empty for none) narrows what loads;
the ``rgb`` adapter and the built-in ``protocols``, which every run needs, load whenever the
variable names any plugin.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import logging
import os
import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal

import pluggy

from mmtrack_kd import hookspecs
from mmtrack_kd.data.dataset import DatasetOptions, DatasetPlugin
from mmtrack_kd.data.modality import AdapterOptions, ModalityAdapter
from mmtrack_kd.errors import PluginError

if TYPE_CHECKING:  # see _interface: evaluation sits above this registry
    from mmtrack_kd.evaluation.protocols.base import Protocol

ENTRY_POINT_GROUP = "mmtrack_kd"
PLUGINS_VARIABLE = "MMTRACK_KD_PLUGINS"

Kind = Literal["modality", "dataset", "protocol", "command"]

#: What a command name may look like: ``mmtrack-kd NAME`` (lower case, digits, dashes).
COMMAND_NAME = re.compile(r"[a-z][a-z0-9-]*")

log = logging.getLogger(__name__)


class MalformedPluginError(PluginError):
    """A plugin registered something that is not a valid adapter, dataset or protocol class, or command;
    that plugin is withdrawn (and listed with the error), the others keep working."""


@dataclass(frozen=True)
class Command:
    """A sub-command a plugin brings: ``mmtrack-kd NAME ...``.

    Attributes:
        name: the sub-command's name.
        add_arguments: adds the command's flags to its ``argparse.ArgumentParser``.
        run: does the work with the parsed arguments; returns the exit status (``None``: 0).
        help: one line for ``mmtrack-kd --help``.
    """

    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]
    help: str = ""


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin, as ``mmtrack-kd plugins`` shows it."""

    name: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    registers: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def label(self) -> str:
        """``name (distribution version)`` for messages."""
        return f"{self.name} ({self.distribution} {self.version})"


def _interface(kind: Kind) -> type:
    """The class whatever a plugin registers as ``kind`` must subclass."""
    if kind == "protocol":
        # The protocol interface lives in evaluation, a layer above this registry. At module top
        # the import would make training and tracking, which load the registry, import
        # evaluation, and would cycle (evaluation looks protocols up here); so it happens when
        # the first protocol is registered.
        from mmtrack_kd.evaluation.protocols.base import Protocol

        return Protocol
    return ModalityAdapter if kind == "modality" else DatasetPlugin


class Registry:
    """What the loaded plugins registered, by kind and name, and who registered it."""

    def __init__(self) -> None:
        self.modalities: dict[str, type[ModalityAdapter]] = {}
        self.datasets: dict[str, type[DatasetPlugin]] = {}
        self.protocols: dict[str, type[Protocol]] = {}
        self.commands: dict[str, Command] = {}
        self.plugins: list[PluginInfo] = []
        self._owners: dict[tuple[str, str], PluginInfo] = {}

    @property
    def failures(self) -> list[PluginInfo]:
        """Plugins that could not be loaded, with their errors."""
        return [info for info in self.plugins if info.error]

    def _table(self, kind: Kind) -> dict[str, Any]:
        return {"modality": self.modalities, "dataset": self.datasets,
                "protocol": self.protocols, "command": self.commands}[kind]

    def get(self, kind: Kind, name: str) -> Any:
        """The registered class of ``kind`` called ``name`` (case-insensitive when no name
        matches exactly, so ``LasHeR`` finds ``lasher``); unknown names raise PluginError
        listing what is installed (and what failed to load)."""
        table = self._table(kind)
        if name in table:
            return table[name]
        # Official spellings (`LasHeR`, `DepthTrack`, `RGBT234`) name the same plugin.
        folded = {key.casefold(): key for key in table}
        if name.casefold() in folded:
            return table[folded[name.casefold()]]
        known = ", ".join(sorted(table)) or "none"
        hint = difflib.get_close_matches(name, list(table), n=1)
        message = f"unknown {kind} {name!r}"
        if hint:
            message += f" (did you mean {hint[0]!r}?)"
        message += f"; installed: {known}"
        if self.failures:
            message += "; plugins that failed to load: " + ", ".join(f.label for f in self.failures)
        raise PluginError(message)

    def modality(self, name: str) -> type[ModalityAdapter]:
        """The modality adapter class called ``name``."""
        return self.get("modality", name)

    def dataset(self, name: str) -> type[DatasetPlugin]:
        """The dataset plugin class called ``name``."""
        return self.get("dataset", name)

    def protocol(self, name: str) -> type[Protocol]:
        """The scoring protocol class called ``name``."""
        return self.get("protocol", name)

    def owner(self, kind: Kind, name: str) -> PluginInfo:
        """The plugin that registered ``name``."""
        return self._owners[(kind, name)]

    def add(self, kind: Literal["modality", "dataset", "protocol"], cls: Any, info: PluginInfo) -> None:
        """Register ``cls`` on behalf of plugin ``info``; checks its declaration and refuses a
        name another plugin already took."""
        base = _interface(kind)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise MalformedPluginError(
                f"plugin {info.label} registered {cls!r} as a {kind}, which is not a subclass of "
                f"{base.__module__}.{base.__name__}"
            )
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise MalformedPluginError(f"plugin {info.label}: {cls.__name__} has no `name`")
        # Both bases forbid unknown keys, so a typo in a plugin's recipe section is an error.
        options_base = {"modality": AdapterOptions, "dataset": DatasetOptions}.get(kind)
        if options_base is not None and not (
                isinstance(cls.Options, type) and issubclass(cls.Options, options_base)):
            raise MalformedPluginError(
                f"plugin {info.label}: {cls.__name__}.Options must subclass "
                f"{options_base.__module__}.{options_base.__name__}"
            )
        self._claim(kind, name, cls, info)

    def add_command(
        self,
        name: str,
        add_arguments: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int | None],
        help: str = "",
        *,
        info: PluginInfo,
    ) -> None:
        """Register the sub-command ``name`` on behalf of plugin ``info`` (the
        ``mmtrack_kd_register_commands`` hook's ``register``)."""
        if not isinstance(name, str) or not COMMAND_NAME.fullmatch(name):
            raise MalformedPluginError(
                f"plugin {info.label} registered the command name {name!r}; a command name is "
                "lower case letters, digits and dashes, starting with a letter"
            )
        for role, function in (("add_arguments", add_arguments), ("run", run)):
            if not callable(function):
                raise MalformedPluginError(
                    f"plugin {info.label}: command {name!r} has no callable `{role}` ({function!r})"
                )
        self._claim("command", name, Command(name, add_arguments, run, str(help)), info)

    def _claim(self, kind: Kind, name: str, value: Any, info: PluginInfo) -> None:
        """File ``value`` under ``name``, or refuse a name another plugin already took."""
        table = self._table(kind)
        if name in table:
            first = self._owners[(kind, name)]
            raise PluginError(
                f"{kind} {name!r} is registered twice: by plugin {first.label} and by plugin "
                f"{info.label}; uninstall one of them or restrict {PLUGINS_VARIABLE}"
            )
        table[name] = value
        self._owners[(kind, name)] = info
        info.registers.append(f"{kind} {name}")

    def withdraw(self, info: PluginInfo) -> None:
        """Remove everything plugin ``info`` registered (its hook failed half-way)."""
        for (kind, name), owner in list(self._owners.items()):
            if owner is info:
                del self._table(kind)[name]
                del self._owners[(kind, name)]
        info.registers.clear()


#: Entry points that ``MMTRACK_KD_PLUGINS`` always loads when it names any: every run reads
#: its RGB stream through the ``rgb`` adapter, and scores with a built-in protocol.
ALWAYS_LOADED = ("rgb", "protocols")


def _selected_names(only: Iterable[str] | None) -> set[str] | None:
    if only is not None:
        return set(only)
    value = os.environ.get(PLUGINS_VARIABLE)
    if value is None:
        return None
    names = {part.strip() for part in value.split(",") if part.strip()}
    # `MMTRACK_KD_PLUGINS=thermal,lasher` means "RGB-T on LasHeR", which needs rgb (and the
    # built-in protocols) as well.
    return names | set(ALWAYS_LOADED) if names else names


def _spec_names() -> list[str]:
    return [name for name in dir(hookspecs) if name.startswith("mmtrack_kd_")]


def _drop_invalid(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> None:
    """Unregister plugins whose hook implementations match no hook specification (a misspelt
    hook name), recording the error, so the rest keep working."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as error:
            name = pm.get_name(error.plugin) or repr(error.plugin)
            unknown = [
                caller.name
                for caller in pm.get_hookcallers(error.plugin) or []
                if not caller.has_spec()
            ]
            hints = []
            for hook in unknown:
                close = difflib.get_close_matches(hook, _spec_names(), n=1)
                hints.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            info = infos[name]
            info.error = "implements unknown hook " + ", ".join(hints or [str(error)])
            log.warning("plugin %s not loaded: %s", info.label, info.error)
            pm.unregister(error.plugin)


def load_registry(
    only: Iterable[str] | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
) -> Registry:
    """Discover plugins from the entry-point group and collect what they register.

    Args:
        only: entry-point names to load, exactly; ``None`` means those named by
            ``MMTRACK_KD_PLUGINS`` (plus ``rgb``) when it is set, otherwise all.
        extra_plugins: ``(name, module_or_object)`` pairs registered directly (tests).

    Raises:
        PluginError: two plugins register the same name. A plugin that fails to import,
            implements an unknown hook, raises in a hook or registers something that is not a
            valid adapter, dataset or protocol class or command is left out, with its error in
            ``failures``.
    """
    selected = _selected_names(only)
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    infos: dict[str, PluginInfo] = {}

    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if selected is not None and entry_point.name not in selected:
            continue
        dist = entry_point.dist
        info = PluginInfo(
            name=entry_point.name,
            distribution=dist.name if dist else "?",
            version=dist.version if dist else "?",
        )
        registry.plugins.append(info)
        infos[info.name] = info
        try:
            plugin = entry_point.load()
        except Exception as error:  # a broken plugin must not take the others down
            info.error = f"import failed: {type(error).__name__}: {error}"
            log.warning("plugin %s not loaded: %s", info.label, info.error)
            continue
        try:
            pm.register(plugin, name=info.name)
        except ValueError as error:
            info.error = str(error)
            log.warning("plugin %s not loaded: %s", info.label, info.error)

    for name, plugin in extra_plugins:
        info = PluginInfo(name=name, distribution="(registered directly)", version="")
        registry.plugins.append(info)
        infos[name] = info
        pm.register(plugin, name=name)

    _drop_invalid(pm, infos)

    # Each hook with the registry method its `register` callback calls.
    hooks: list[tuple[pluggy.HookCaller, Callable[..., None]]] = [
        (pm.hook.mmtrack_kd_register_modalities, functools.partial(registry.add, "modality")),
        (pm.hook.mmtrack_kd_register_datasets, functools.partial(registry.add, "dataset")),
        (pm.hook.mmtrack_kd_register_protocols, functools.partial(registry.add, "protocol")),
        (pm.hook.mmtrack_kd_register_commands, registry.add_command),
    ]
    for caller, add in hooks:
        # Call each implementation on its own so every registration is attributed to its plugin.
        for impl in reversed(caller.get_hookimpls()):
            info = infos[impl.plugin_name]
            info.hooks.append(caller.name)
            if info.error:  # an earlier hook of this plugin failed; its registrations are gone
                continue
            register: Callable[..., None] = functools.partial(add, info=info)
            try:
                impl.function(register=register)
            except MalformedPluginError as error:  # the plugin's bug: the others keep working
                info.error = str(error)
                log.warning("plugin %s not loaded: %s", info.label, info.error)
                registry.withdraw(info)
            except PluginError:
                raise  # a duplicate name: the user must choose which plugin to keep, see add()
            except Exception as error:  # a broken hook must not take the others down
                info.error = f"hook {caller.name} failed: {type(error).__name__}: {error}"
                log.warning("plugin %s not loaded: %s", info.label, info.error)
                registry.withdraw(info)
    return registry


@functools.lru_cache(maxsize=None)
def default_registry() -> Registry:
    """The registry of the installed plugins, loaded once per process."""
    return load_registry()

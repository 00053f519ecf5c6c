"""Scoring protocols: the interface, the lookup by name, and the built-in protocols (one module
each, registered by :mod:`.builtin`).

A protocol is a :class:`Protocol` subclass that carries its facts (confidence, image size,
result layout, headline score, figure panels, published benchmarks) and scores with
:meth:`Protocol.score`::

    protocol.score(predictions, ground_truths, confidences=None, files=None, attributes=True)
        -> ProtocolResult

``predictions`` maps a sequence name to its ``(M, 4)`` boxes (x, y, w, h in pixels, ``M`` at
least the number of ground-truth frames; longer results are cut), ``ground_truths`` is an
iterable (or name mapping) of :class:`~mmtrack_kd.evaluation.groundtruth.GroundTruth`,
``confidences`` maps a name to ``(M,)`` values (for a protocol that ``needs_confidence``),
``files`` maps a name to its result file so that errors can name it. Exact definitions are in
each built-in module's docstring.

Protocols are found by name in the plugin registry (:class:`~mmtrack_kd.plugins.Registry`),
which every plugin, the built-in ``protocols`` entry point included, fills through the
``mmtrack_kd_register_protocols`` hook.
"""

from __future__ import annotations

from typing import Any

from mmtrack_kd.errors import PluginError
from mmtrack_kd.evaluation.protocols.base import (
    NORM_PRECISION_SPEC,
    PRECISION_SPEC,
    SUCCESS_SPEC,
    Aggregate,
    CurveSpec,
    MeanCurveProtocol,
    Panel,
    Protocol,
    SequenceInput,
    index_of,
    rate_curve,
)
from mmtrack_kd.plugins import Registry, default_registry


def get_protocol(protocol: str | Protocol, registry: Registry | None = None) -> Protocol:
    """The protocol registered under ``protocol`` (a protocol object is returned as it is).

    Args:
        protocol: a registry name (official spellings too) or a :class:`Protocol`.
        registry: plugin registry (default: the installed plugins).

    Raises:
        PluginError: unknown name (the message lists the installed protocols).
    """
    if isinstance(protocol, Protocol):
        return protocol
    registry = registry if registry is not None else default_registry()
    return registry.protocol(protocol)()


def protocol_of(dataset: Any, registry: Registry | None = None) -> Protocol:
    """The protocol a dataset plugin instance names in its ``protocol``.

    Raises:
        PluginError: no installed plugin registers that protocol; the message names the dataset
            and the plugin that registered it.
    """
    registry = registry if registry is not None else default_registry()
    name = str(dataset.protocol)
    try:
        return get_protocol(name, registry)
    except PluginError as error:
        dataset_name = getattr(dataset, "name", type(dataset).__name__)
        try:
            by = f" (plugin {registry.owner('dataset', dataset_name).label})"
        except KeyError:  # a dataset plugin built outside this registry
            by = ""
        raise PluginError(f"dataset {dataset_name}{by} is scored with protocol {name!r}, which "
                          f"no loaded plugin registers: {error}") from None


__all__ = [
    "NORM_PRECISION_SPEC",
    "PRECISION_SPEC",
    "SUCCESS_SPEC",
    "Aggregate",
    "CurveSpec",
    "MeanCurveProtocol",
    "Panel",
    "Protocol",
    "SequenceInput",
    "get_protocol",
    "index_of",
    "protocol_of",
    "rate_curve",
]

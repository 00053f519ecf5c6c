"""Scoring protocols of the datasets, one module each, and the registry from name to function.

Every scoring function has the signature::

    score_x(predictions, ground_truths, confidences=None, files=None, attributes=True)
        -> ProtocolResult

``predictions`` maps a sequence name to its ``(M, 4)`` boxes (x, y, w, h in pixels, ``M`` at
least the number of ground-truth frames; longer results are cut), ``ground_truths`` is an
iterable (or name mapping) of :class:`~mmtrack_kd.evaluation.groundtruth.GroundTruth`,
``confidences`` maps a name to ``(M,)`` values (DepthTrack only), ``files`` maps a name to its
result file so that errors can name it. Exact definitions are in each module's docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from os import PathLike

from mmtrack_kd.errors import PluginError
from mmtrack_kd.evaluation.groundtruth import GroundTruth
from mmtrack_kd.evaluation.protocols._core import ArrayLike, Panel, Protocol
from mmtrack_kd.evaluation.protocols.depthtrack import DepthTrackProtocol, score_depthtrack
from mmtrack_kd.evaluation.protocols.gtot import GTOTProtocol, score_gtot
from mmtrack_kd.evaluation.protocols.lasher import LasHeRProtocol, score_lasher
from mmtrack_kd.evaluation.protocols.otb import OTBProtocol, score_otb
from mmtrack_kd.evaluation.protocols.rgbt234 import (
    RGBT210Protocol,
    RGBT234Protocol,
    score_rgbt210,
    score_rgbt234,
)
from mmtrack_kd.evaluation.protocols.visevent import VisEventProtocol, score_visevent
from mmtrack_kd.evaluation.protocols.vtuav import VTUAVProtocol, score_vtuav
from mmtrack_kd.evaluation.result import ProtocolResult

ScoringFunction = Callable[..., ProtocolResult]

#: Protocol name -> scoring function.
PROTOCOLS: dict[str, ScoringFunction] = {
    "otb": score_otb,
    "lasher": score_lasher,
    "visevent": score_visevent,
    "rgbt234": score_rgbt234,
    "rgbt210": score_rgbt210,
    "gtot": score_gtot,
    "vtuav": score_vtuav,
    "depthtrack": score_depthtrack,
}

#: Protocol name -> its class, which carries the facts reports need (``curve_scores``,
#: ``headline_score``, ``panels``).
PROTOCOL_TYPES: dict[str, type[Protocol]] = {
    cls.name: cls
    for cls in (OTBProtocol, LasHeRProtocol, VisEventProtocol, RGBT234Protocol, RGBT210Protocol,
                GTOTProtocol, VTUAVProtocol, DepthTrackProtocol)
}

#: Protocols that need a confidence per frame.
NEEDS_CONFIDENCE = frozenset({"depthtrack"})
#: Protocols whose overlap clips boxes to the image (the VOT toolkit's), so the ground truth must
#: carry the frame size.
NEEDS_IMAGE_SIZE = frozenset({"depthtrack"})


def get_protocol(name: str) -> ScoringFunction:
    """The scoring function registered under ``name``.

    Raises:
        PluginError: unknown name (the message lists the known ones).
    """
    try:
        return PROTOCOLS[name]
    except KeyError:
        known = ", ".join(sorted(PROTOCOLS))
        raise PluginError(f"unknown evaluation protocol {name!r}; known: {known}") from None


def protocol_type(name: str) -> type[Protocol]:
    """The protocol class registered under ``name`` (its facts: curve scores, headline score,
    figure panels).

    Raises:
        PluginError: unknown name (the message lists the known ones).
    """
    get_protocol(name)  # one message for an unknown name
    return PROTOCOL_TYPES[name]


def score(
    protocol: str,
    predictions: Mapping[str, ArrayLike],
    ground_truths: Iterable[GroundTruth] | Mapping[str, GroundTruth],
    confidences: Mapping[str, ArrayLike] | None = None,
    files: Mapping[str, str | PathLike[str]] | None = None,
    attributes: bool = True,
) -> ProtocolResult:
    """Score with the protocol registered under ``protocol`` (see the module docstring)."""
    return get_protocol(protocol)(
        predictions, ground_truths, confidences=confidences, files=files, attributes=attributes
    )


__all__ = [
    "NEEDS_CONFIDENCE",
    "NEEDS_IMAGE_SIZE",
    "PROTOCOLS",
    "PROTOCOL_TYPES",
    "Panel",
    "Protocol",
    "ScoringFunction",
    "get_protocol",
    "protocol_type",
    "score",
    "score_depthtrack",
    "score_gtot",
    "score_lasher",
    "score_otb",
    "score_rgbt210",
    "score_rgbt234",
    "score_visevent",
    "score_vtuav",
]

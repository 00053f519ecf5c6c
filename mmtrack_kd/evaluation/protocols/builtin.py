"""The built-in protocols, registered through the plugin hook exactly as a third-party protocol
is (this module is the ``protocols`` entry point of the ``mmtrack_kd`` group)."""

from __future__ import annotations

from typing import Callable

from mmtrack_kd.evaluation.protocols.depthtrack import DepthTrackProtocol
from mmtrack_kd.evaluation.protocols.gtot import GTOTProtocol
from mmtrack_kd.evaluation.protocols.lasher import LasHeRProtocol
from mmtrack_kd.evaluation.protocols.otb import OTBProtocol
from mmtrack_kd.evaluation.protocols.rgbt234 import RGBT210Protocol, RGBT234Protocol
from mmtrack_kd.evaluation.protocols.visevent import VisEventProtocol
from mmtrack_kd.evaluation.protocols.vtuav import VTUAVProtocol
from mmtrack_kd.hookspecs import hookimpl

#: In the order ``mmtrack-kd plugins`` and the scoring benchmark list them.
BUILTIN_PROTOCOLS = (OTBProtocol, LasHeRProtocol, VisEventProtocol, RGBT234Protocol,
                     RGBT210Protocol, GTOTProtocol, VTUAVProtocol, DepthTrackProtocol)


@hookimpl
def mmtrack_kd_register_protocols(register: Callable[[type], None]) -> None:
    """Register the protocols of the benchmarks the built-in dataset plugins read."""
    for protocol in BUILTIN_PROTOCOLS:
        register(protocol)

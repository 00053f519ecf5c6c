"""Evaluation core: ground truth, per-frame metrics, scoring protocols, reports.

* :class:`GroundTruth` - one sequence's annotations (boxes, per-modality boxes, visibility,
  attributes).
* :mod:`.metrics` - centre error, normalised centre error, IoU, VOT raster overlap.
* :mod:`.protocols` - the :class:`Protocol` interface, the built-in protocols and the lookup
  by name in the plugin registry (:func:`get_protocol`); each scores into a
  :class:`ProtocolResult`.
* Result files (OTB-style, VOT long-term) are :mod:`mmtrack_kd.data.results_io`, below both the
  tracker that writes them and the scorer that reads them.
* :mod:`.scoring` - score a result folder; :mod:`.bench` - timing on synthetic data.
* :mod:`.report`, :mod:`.plots` - one evaluation's tables and figures; :mod:`.cross_report` -
  several runs over datasets and modalities in one table, JSON and figure sheet per dataset.
"""

from mmtrack_kd.evaluation.groundtruth import GroundTruth
from mmtrack_kd.evaluation.protocols import Protocol, get_protocol, protocol_of
from mmtrack_kd.evaluation.result import Curve, ProtocolResult
from mmtrack_kd.evaluation.scoring import score_results_folder

__all__ = [
    "Curve",
    "GroundTruth",
    "Protocol",
    "ProtocolResult",
    "get_protocol",
    "protocol_of",
    "score_results_folder",
]

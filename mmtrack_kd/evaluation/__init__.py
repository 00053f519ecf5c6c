"""Evaluation core: ground truth, per-frame metrics, dataset protocols, result files.

* :class:`GroundTruth` - one sequence's annotations (boxes, per-modality boxes, visibility,
  attributes).
* :mod:`.metrics` - centre error, normalised centre error, IoU, VOT raster overlap.
* :mod:`.protocols` - one scoring function per protocol and the ``PROTOCOLS`` registry
  (``otb``, ``lasher``, ``visevent``, ``rgbt234``, ``rgbt210``, ``gtot``, ``vtuav``,
  ``depthtrack``); each returns a :class:`ProtocolResult`.
* :mod:`.results_io` - OTB-style and VOT long-term result files (atomic writes).
* :mod:`.scoring` - score a result folder; :mod:`.bench` - timing on synthetic data.
* :mod:`.report`, :mod:`.plots` - one evaluation's tables and figures; :mod:`.cross_report` -
  several runs over datasets and modalities in one table, JSON and figure sheet per dataset.
"""

from mmtrack_kd.evaluation.groundtruth import GroundTruth
from mmtrack_kd.evaluation.protocols import PROTOCOLS, get_protocol, score
from mmtrack_kd.evaluation.result import Curve, ProtocolResult
from mmtrack_kd.evaluation.scoring import score_results_folder

__all__ = [
    "PROTOCOLS",
    "Curve",
    "GroundTruth",
    "ProtocolResult",
    "get_protocol",
    "score",
    "score_results_folder",
]

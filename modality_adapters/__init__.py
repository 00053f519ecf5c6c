"""Built-in modality plugins of mmtrack-kd.

Each module is one plugin, listed as an entry point of the ``mmtrack_kd`` group and registering
one :class:`~mmtrack_kd.data.ModalityAdapter` through the ``mmtrack_kd_register_modalities`` hook:

- :mod:`modality_adapters.rgb`: ``rgb``, the colour stream every sequence carries.
- :mod:`modality_adapters.thermal`: ``thermal``, 8-bit or 16-bit radiometric infrared images.
- :mod:`modality_adapters.depth`: ``depth``, uint16 depth maps with ViPT's clipping and JET map.
- :mod:`modality_adapters.event`: ``event``, rendered event frames or voxel grids of raw events.

Support modules (not plugins): :mod:`modality_adapters.aedat4` (VisEvent ``.aedat4`` to the
HDF5 event file of :mod:`mmtrack_kd.data.event_store`) and :mod:`modality_adapters.common`
(helpers shared by the adapters).

The engine never imports this package by name; it finds the plugins through their entry points.
"""

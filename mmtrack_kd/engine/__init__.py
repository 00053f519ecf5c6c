"""The training engine: a recipe's stages trained in a run folder.

- :mod:`~mmtrack_kd.engine.run` -- ``mmtrack-kd train``: the run folder, its lock, the stages in order;
- :mod:`~mmtrack_kd.engine.build` -- from a validated recipe to adapters, datasets and model settings;
- :mod:`~mmtrack_kd.engine.stages` -- what the teacher and the student stage own (model, start
  weights, loss terms, keep-ratio schedule);
- :mod:`~mmtrack_kd.engine.trainer` -- the one loop both stages run (epochs, accumulation,
  validation, best and last);
- :mod:`~mmtrack_kd.engine.checkpointing` -- a stage's ``last.pt`` / ``best.pt`` as run checkpoints;
- :mod:`~mmtrack_kd.engine.signals` -- cooperative stops on SIGTERM / SIGINT;
- :mod:`~mmtrack_kd.engine.losses`, :mod:`~mmtrack_kd.engine.optim`,
  :mod:`~mmtrack_kd.engine.metrics_log`, :mod:`~mmtrack_kd.engine.bench`.
"""

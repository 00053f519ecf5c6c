"""The paper's claims checked at small scale on synthetic data.

This package sits above training and evaluation: it imports :mod:`mmtrack_kd.engine` and
:mod:`mmtrack_kd.evaluation`, and nothing below the CLI imports it. Its modules, bottom-up:

- :mod:`~mmtrack_kd.experiments.arms`: the arms table (``recipes/experiments/arms.yaml``): base
  recipes per modality plus a few overrides per arm.
- :mod:`~mmtrack_kd.experiments.planning`: the jobs (arm x modality x seed), their order and
  their full recipes.
- :mod:`~mmtrack_kd.experiments.analysis`: reading records: headline scores, spreads, stream
  reliance, suspect evaluations, teacher files.
- :mod:`~mmtrack_kd.experiments.claims`: the paper's claims as data, read from measured noise.
- :mod:`~mmtrack_kd.experiments.report`: the markdown report of the records.
- :mod:`~mmtrack_kd.experiments.running`: training, evaluating and storing one record per job;
  records carried between machines.
- :mod:`~mmtrack_kd.experiments.command`: ``mmtrack-kd experiments`` and its flags.
"""

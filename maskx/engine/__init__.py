"""Training, evaluation and experiments for Mask^X R-CNN (``maskx.model``).

- ``config``: a run's configuration (model, data, solver, training, mask heads);
- ``data``: data sets from the configuration and the seeded training stream;
- ``solver``: optimizer and learning-rate schedule; ``distributed``: torchrun set-up;
- ``trainer``: end-to-end, stage-1 and stage-2 training with checkpoints and resume;
- ``checkpoint`` / ``trained_model``: checkpoints on disk and the model read back;
- ``inference``: every mask head of a model over a data set on shared detections;
- ``metrics``: metrics.jsonl and the loss curve; ``experiment``: the demo's comparison.
"""

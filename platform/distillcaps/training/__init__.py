"""distillcaps.training: Ray Data + Ray Train, checkpoints, the feature cache.

One training path, read top-down: ``trainer.train(cfg)`` is a group of one of
``group.train_group(cfgs)`` (``group.train_members``), which checks the configs and prepares the
data (``prepare``), runs one ``TorchTrainer`` (``fit``) whose workers run ``loop``, picks and copies
checkpoints (``checkpoints``, ``train_state``) and logs to MLflow.
"""

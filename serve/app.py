"""Import path for ``serve run serve/config.yaml``: the application builder from the library.

``args`` in the config are ServingConfig fields (upload limits, default model); the CaptionModel
deployment's ``user_config`` (also ServingConfig fields) picks the model and can be changed live.
"""

from distillcaps.serving.app import build_app

app_builder = build_app

"""mimir_torch: the workbench's PyTorch engine (issue 12).

The same models, parameter names and layouts, losses and steps as src/engine (TensorFlow.js), so a
checkpoint in the workbench's format loads in either engine. Settings come from the config JSON the
Node side has validated and filled with its defaults: nothing here re-derives a default.
"""

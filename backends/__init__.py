"""Adapters between model libraries and the engine; the engine itself never imports them.

``backends.transformers``: ``from_transformers(model, tokenizer)`` and ``load_default_model()``.
"""

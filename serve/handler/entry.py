"""The file TorchServe loads (`--handler`): a module-level `handle`, with no BaseHandler overhead per
batch. Inside the .mar it runs as a top-level module beside `serve/handler/` and `mlops/config/values.py`
(mlops/release/archive.py packs them), so it imports the package by its full name."""

from __future__ import annotations

from serve.handler.service import TabularHandler

_service = TabularHandler()


def handle(data, context):
    """TorchServe's entry point: the first call (data None at load time) initialises the model."""
    if _service.model is None:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)

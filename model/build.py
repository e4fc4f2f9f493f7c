"""The model by configuration: `train.model`, `train.features` and `train.optimizer` in params.yaml name
a class (`module.Name`, imported) and its keyword arguments, so a new architecture or hyperparameter is
an edit of params.yaml (and a new file under model/), never of train.py.

`train.model` names either
- a LightningModule: it is built with the arguments it declares among `preprocessing`, `n_outputs`,
  `class_weights`, `optimizer` (a callable: parameters -> torch optimizer) and `features` (the feature
  hook), plus its own from params.yaml; its `net` attribute is what is exported and served; or
- a network builder (a function or nn.Module class) called with `n_inputs`, `n_outputs` and its own
  arguments; the returned network becomes the body of the default LitTabular.
docs/models.md has the contract and what must compile with TorchScript.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytorch_lightning as pl
import torch

from mlops.config.errors import UserError
from mlops.config.params import Params

CONTEXT = ("preprocessing", "n_outputs", "class_weights", "optimizer", "features")


class NotScriptable(UserError):
    """The network cannot be compiled by torch.jit.script, so it could not be exported or served."""


def optimizer(params: Params):
    """`train.optimizer` as a callable: parameters -> the optimizer with params.yaml's arguments."""
    spec = params.train.optimizer
    cls = spec.resolve("train.optimizer")
    return functools.partial(cls, **spec.checked_kwargs("train.optimizer", cls, reserved=("params",)))


def features(params: Params) -> torch.nn.Module:
    """The feature hook (`train.features`, default model/features.py's `Features`) for this schema."""
    spec = params.train.features
    cls = spec.resolve("train.features")
    kwargs = spec.checked_kwargs("train.features", cls, reserved=("columns",))
    return cls(params.data.feature_names, **kwargs)


def _accepted(target: Any, context: dict[str, Any]) -> dict[str, Any]:
    """The context arguments `target` declares (all of them if it takes **kwargs)."""
    parameters = inspect.signature(target).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return context
    return {k: v for k, v in context.items() if k in parameters}


def build_module(
    params: Params, preprocessing: dict, class_weights: list[float] | None
) -> pl.LightningModule:
    """The LightningModule `train.model` names, checked to compile with TorchScript before it trains."""
    from model.net import LitTabular, Preprocess

    spec = params.train.model
    target = spec.resolve("train.model")
    n_outputs = 1 if params.data.regression else len(params.data.classes)
    context = {
        "preprocessing": {**preprocessing, "task": params.task},
        "n_outputs": n_outputs,
        "class_weights": class_weights,
        "optimizer": optimizer(params),
        "features": features(params),
    }
    if isinstance(target, type) and issubclass(target, pl.LightningModule):
        own = spec.checked_kwargs("train.model", target, reserved=CONTEXT)
        module = target(**_accepted(target, context), **own)
    else:
        own = spec.checked_kwargs("train.model", target, reserved=("n_inputs", "n_outputs"))
        n_inputs = Preprocess(context["preprocessing"]).width + int(context["features"].width)
        body = target(n_inputs=n_inputs, n_outputs=n_outputs, **own)
        module = LitTabular(**context, body=body)
    if not isinstance(getattr(module, "net", None), torch.nn.Module):
        raise UserError(
            f"train.model {spec.target}: the module has no `net` (the nn.Module exported and served)"
        )
    check_scriptable(module.net, spec.target)
    return module


def check_scriptable(net: torch.nn.Module, name: str) -> None:
    """Compile the network as export will, before any training time is spent; one line if it fails."""
    try:
        torch.jit.script(net)
    except Exception as err:  # TorchScript raises several types (RuntimeError, NotSupportedError, ...)
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = lines[0].rstrip(":") if lines else type(err).__name__
        where = next((line for line in lines if line.startswith("File ")), "")  # the first frame: the cause
        raise NotScriptable(
            f"train.model {name}: its network {type(net).__name__} cannot be compiled by torch.jit.script"
            f" ({reason}{' ' + where if where else ''}); docs/models.md says what must be TorchScript"
        ) from None

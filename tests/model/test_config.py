"""A forker's tasks, done the way docs/models.md says: by editing params.yaml (and adding a file), never
train.py. Unit-level: a 60-row table, a few epochs, the handler scoring offline."""

from __future__ import annotations

import dataclasses
import inspect
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from mlops.config import sections
from mlops.config.params import ParamsError, load_params

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["a", "b", "c"]


def write(tmp_path: Path, **train) -> Path:
    """A small params.yaml; `train` keys as a forker would write them."""
    params = {
        "seed": 3,
        "data": {
            "path": "t.csv",
            "label": "y",
            "classes": ["no", "yes"],
            "features": dict.fromkeys(FEATURES),
        },
        "train": {"max_epochs": 2, "batch_size": 16, **train},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def table(rows: int = 60, seed: int = 0):
    """Train and val frames (encoded features + label) and the preprocessing `prepare` would fit."""
    from model.prepare import fit_scaler

    rng = np.random.default_rng(seed)
    x = rng.uniform(1.0, 5.0, size=(rows, len(FEATURES)))
    frame = pd.DataFrame(x, columns=FEATURES).assign(label=(x[:, 0] > x[:, 1]).astype(int))
    train, val = frame.iloc[:40].reset_index(drop=True), frame.iloc[40:].reset_index(drop=True)
    return train, val, fit_scaler(train, FEATURES)


def plugin(tmp_path: Path, monkeypatch, name: str, source: str) -> None:
    """A forker's new module file, importable as `mine_<name>.<name>` (model/<name>.py imports the same
    way); one package per test, so no test imports another's from the module cache."""
    package = tmp_path / f"mine_{name}"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").touch()
    (package / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))


def served(tmp_path: Path, module, preprocessing: dict, rows: list[list[float]], monkeypatch) -> list[dict]:
    """Export as `mlops train` does, then score through the TorchServe handler, offline."""
    from model.encoding import schema
    from model.train import export
    from serve import handler as serve_handler
    from tests.serve.test_handler import Context, call

    model_dir = tmp_path / "served"
    model_dir.mkdir()
    export(module, model_dir / "model.pt")
    spec = {"features": FEATURES, "classes": ["no", "yes"], "task": "classification"}
    spec |= {"schema": schema(preprocessing), "model_version": "1", "max_batch_rows": 64}
    (model_dir / "serve.json").write_text(json.dumps(spec))
    monkeypatch.setenv("MLOPS_INFERENCE_LOG_DIR", "off")
    monkeypatch.delenv("MLOPS_SERVE_SPEC", raising=False)
    handler = serve_handler.TabularHandler()
    handler.initialize(Context(model_dir, 1))
    [answer], _ = call(
        (handler, model_dir), {"instances": [dict(zip(FEATURES, r, strict=True)) for r in rows]}
    )
    return answer["predictions"]


def eager_probabilities(module, rows: list[list[float]]) -> np.ndarray:
    with torch.no_grad():
        logits = module.net.eval()(torch.tensor(rows, dtype=torch.float32))
    return torch.softmax(logits.double(), dim=1).numpy()


def test_every_code_default_equals_params_yaml():
    """Leaving a key out of params.yaml changes nothing: the dataclass default is the file's value."""
    from model.net import LitTabular

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    checked = 0

    def same(section, values: dict, where: str) -> None:
        nonlocal checked
        for key, value in values.items():
            default = getattr(section, key)
            if isinstance(default, sections.Component):
                kwargs = dict(default.kwargs)
                target = default.resolve(where)
                signature = inspect.signature(target).parameters
                kwargs |= {k: p.default for k, p in signature.items() if k not in kwargs}
                assert value.get("class", default.target) == default.target, f"{where}.{key}.class"
                for k, v in value.items():
                    if k != "class":
                        assert list(np.ravel(kwargs[k])) == list(np.ravel(v)), f"{where}.{key}.{k}"
                        checked += 1
            elif dataclasses.is_dataclass(default):
                same(default, value or {}, f"{where}.{key}")
            elif not (where == "gates" or key == "slices"):  # tables of the bundled dataset's own metrics
                assert default == value, f"{where}.{key}: code {default!r}, params.yaml {value!r}"
                checked += 1

    for name, cls in [("split", sections.Split), ("train", sections.Train), ("report", sections.Report)]:
        same(cls(), raw[name], name)
    for name, cls in [("serve", sections.Serve), ("monitoring", sections.Monitoring)]:
        same(cls(), raw[name], name)
    assert inspect.signature(LitTabular).parameters["dropout"].default == raw["train"]["model"]["dropout"]
    assert checked > 60


@pytest.mark.parametrize(
    "train, message",
    [
        ({"max_epoch": 2}, "params.yaml: unknown key train.max_epoch; did you mean max_epochs?"),
        (
            {"optimizer": {"lr": 0.1, "weight_decy": 0.1}},
            "unknown key train.optimizer.weight_decy; did you mean weight_decay?",
        ),
        ({"model": {"hiden": [8]}}, "unknown key train.model.hiden; did you mean hidden?"),
        ({"lr": 0.01}, "unknown key train.lr; did you mean optimizer.lr?"),  # where it lives now
    ],
)
def test_a_typo_fails_with_one_line_naming_the_closest_key(tmp_path, train, message):
    from model.build import build_module

    with pytest.raises(ParamsError) as err:
        params = load_params(write(tmp_path, **train))
        build_module(params, table()[2], None)  # class arguments are checked against the class
    assert str(err.value).endswith(message) and "\n" not in str(err.value)


def test_the_cli_prints_a_typo_as_one_line(tmp_path, monkeypatch, capsys):
    from mlops.cli import main

    raw = (ROOT / "params.yaml").read_text().replace("  max_epochs: 40", "  max_epoch: 2")
    (tmp_path / "params.yaml").write_text(raw)
    monkeypatch.chdir(tmp_path)
    assert main(["prepare"]) != 0
    err = capsys.readouterr().err.strip()
    assert err == "mlops prepare: error: params.yaml: unknown key train.max_epoch; did you mean max_epochs?"


def test_a_new_optimizer_hyperparameter_reaches_the_optimizer_from_params_yaml_alone(tmp_path):
    from model.build import build_module

    prep = table()[2]
    text = (ROOT / "params.yaml").read_text()
    edited = text.replace(
        "    weight_decay: 0.0001\n", "    weight_decay: 0.0001\n    amsgrad: true\n    betas: [0.8, 0.95]\n"
    )
    assert edited != text
    (tmp_path / "params.yaml").write_text(edited)
    params = dataclasses.replace(
        load_params(tmp_path / "params.yaml"), data=load_params(write(tmp_path)).data
    )
    optimizer = build_module(params, prep, None).configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["amsgrad"] is True and tuple(optimizer.defaults["betas"]) == (0.8, 0.95)
    assert (optimizer.defaults["lr"], optimizer.defaults["weight_decay"]) == (0.003, 0.0001)
    sgd = load_params(write(tmp_path, optimizer={"class": "torch.optim.SGD", "lr": 0.1, "momentum": 0.9}))
    optimizer = build_module(sgd, prep, None).configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9


CUSTOM = """
    import pytorch_lightning as pl
    import torch
    from torch import nn

    from model.net import Preprocess


    class Net(nn.Module):
        def __init__(self, preprocessing: dict, n_outputs: int, scale: float):
            super().__init__()
            self.prep = Preprocess(preprocessing)
            self.linear = nn.Linear(self.prep.width, n_outputs)
            self.scale = scale

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(self.prep(x)) * self.scale


    class LitLinear(pl.LightningModule):
        def __init__(self, preprocessing: dict, n_outputs: int, optimizer, scale: float = 1.0):
            super().__init__()
            self.net = Net(preprocessing, n_outputs, scale)
            self.optimizer = optimizer

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch, batch_idx):
            pass

        def configure_optimizers(self):
            return self.optimizer(self.parameters())
"""


def test_a_custom_lightning_module_in_a_new_file_trains_exports_and_serves(tmp_path, monkeypatch):
    from model.train import fit

    plugin(tmp_path, monkeypatch, "linear", CUSTOM)
    params = load_params(write(tmp_path, model={"class": "mine_linear.linear.LitLinear", "scale": 2.0}))
    train, val, prep = table()
    module, trainer = fit(params, train, val, prep)
    assert type(module).__name__ == "LitLinear" and module.net.scale == 2.0 and trainer.current_epoch == 2
    rows = val[FEATURES].to_numpy().tolist()[:5]
    answers = served(tmp_path, module, prep, rows, monkeypatch)
    expected = eager_probabilities(module, rows)
    assert [a["probabilities"]["yes"] for a in answers] == pytest.approx(expected[:, 1].tolist(), abs=1e-6)


FEATURE_HOOK = """
    import torch
    from torch import nn


    class Ratio(nn.Module):
        def __init__(self, columns: list[str]):
            super().__init__()
            self.a, self.b = columns.index("a"), columns.index("b")
            self.width: int = 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(x[:, self.a] / x[:, self.b]).unsqueeze(1)
"""


def test_an_engineered_feature_in_the_hook_is_served_identically(tmp_path, monkeypatch):
    from model.train import fit

    plugin(tmp_path, monkeypatch, "ratio", FEATURE_HOOK)
    params = load_params(write(tmp_path, features={"class": "mine_ratio.ratio.Ratio"}, model={"hidden": [4]}))
    train, val, prep = table()
    module, _ = fit(params, train, val, prep)
    body = module.net.body[0]
    assert body.in_features == len(FEATURES) + 1  # the engineered column feeds the network
    rows = [[2.0, 1.0, 3.0], [1.0, 4.0, 2.0], [3.0, 3.0, 1.0]]
    answers = served(tmp_path, module, prep, rows, monkeypatch)
    expected = eager_probabilities(module, rows)
    assert [a["probabilities"]["yes"] for a in answers] == pytest.approx(expected[:, 1].tolist(), abs=1e-6)
    exported = torch.jit.load(str(tmp_path / "served/model.pt"))
    ratio = exported.features(torch.tensor(rows, dtype=torch.float32))
    assert ratio[:, 0].tolist() == pytest.approx(np.log([2.0, 0.25, 1.0]).tolist(), abs=1e-6)


def test_a_network_torchscript_cannot_compile_fails_before_training_with_one_line(tmp_path, monkeypatch):
    from model.build import NotScriptable, build_module

    plugin(
        tmp_path,
        monkeypatch,
        "bad",
        """
        import torch
        from torch import nn


        class Numpy(nn.Module):
            def __init__(self, n_inputs: int, n_outputs: int):
                super().__init__()
                self.linear = nn.Linear(n_inputs, n_outputs)

            def forward(self, x):
                return torch.from_numpy(self.linear(x).detach().numpy())  # numpy: not TorchScript
        """,
    )
    params = load_params(write(tmp_path, model={"class": "mine_bad.bad.Numpy"}))
    with pytest.raises(NotScriptable) as err:
        build_module(params, table()[2], None)
    message = str(err.value)
    assert message.startswith("train.model mine_bad.bad.Numpy: its network TabularNet cannot be compiled")
    assert "has no attribute or method 'numpy'" in message and 'bad.py", line' in message
    assert "docs/models.md" in message and "\n" not in message

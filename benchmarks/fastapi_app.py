"""What a user might pick instead: the same TorchScript model behind FastAPI/uvicorn (benchmarks/serve.py).

Same request and response shapes as the TorchServe handler (rows, and the Open Inference Protocol),
minimal validation, no auth, no inference log, no metrics.
Run: MODEL_DIR=artifacts/model uvicorn benchmarks.fastapi_app:app --host 127.0.0.1 --port 8000 --workers 2
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import orjson
import torch
from fastapi import FastAPI, HTTPException, Request, Response

MODEL_DIR = Path(os.environ.get("MODEL_DIR", "artifacts/model"))
torch.set_num_threads(1)
model = torch.jit.load(str(MODEL_DIR / "model.pt")).eval()
meta = json.loads((MODEL_DIR / "meta.json").read_text())
FEATURES, CLASSES = meta["features"], meta["classes"]
app = FastAPI()


def _proba(x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.softmax(model(x).double(), dim=1)


@app.post("/predictions/{name}")
async def predict(name: str, request: Request) -> Response:
    try:
        rows = orjson.loads(await request.body())["instances"]
        values = [[row[f] for f in FEATURES] if isinstance(row, dict) else row for row in rows]
        x = torch.tensor(values, dtype=torch.float32)
    except (ValueError, KeyError, TypeError) as err:
        raise HTTPException(400, str(err)) from None
    proba = _proba(x).tolist()
    preds = [
        {
            "label": CLASSES[max(range(len(p)), key=p.__getitem__)],
            "probabilities": dict(zip(CLASSES, p, strict=False)),
            "model_version": "bench",
        }
        for p in proba
    ]
    return Response(orjson.dumps({"predictions": preds}), media_type="application/json")


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request) -> Response:
    try:
        body = orjson.loads(await request.body())
        tensor = body["inputs"][0]
        n = int(tensor["shape"][0])
        x = torch.from_numpy(np.asarray(tensor["data"], dtype=np.float32).reshape(n, len(FEATURES)))
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise HTTPException(400, str(err)) from None
    proba = _proba(x)
    labels = [CLASSES[i] for i in proba.argmax(dim=1).tolist()]
    answer = {
        "model_name": name,
        "model_version": "bench",
        "id": body.get("id", ""),
        "outputs": [
            {"name": "label", "shape": [n], "datatype": "BYTES", "data": labels},
            {
                "name": "probabilities",
                "shape": [n, len(CLASSES)],
                "datatype": "FP64",
                "data": proba.flatten().tolist(),
            },
        ],
    }
    return Response(orjson.dumps(answer), media_type="application/json")

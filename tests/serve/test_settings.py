"""Values derived from params.yaml for the server: request size limit, handler spec."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.config.params import load_params
from serve import settings
from tests.schema import bounded

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.template
def test_the_image_request_size_matches_params():
    """The template's Dockerfile default is its params.yaml's value. A fork's own table changes the value;
    `make image` passes it as a build arg, so this is the template's check (as the gate's body limit in
    tests/template/deploy), not a fork's."""
    printed = subprocess.run(
        [sys.executable, "-m", "serve.settings", "max-request-size"], cwd=ROOT, capture_output=True, text=True
    )
    assert printed.returncode == 0, printed.stderr
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG MAX_REQUEST_SIZE=(\d+)$", dockerfile, re.M).group(1) == printed.stdout.strip()
    assert "TS_MAX_REQUEST_SIZE=${MAX_REQUEST_SIZE}" in dockerfile


def test_a_full_batch_fits_the_request_size_and_a_bit_over_twice_the_rows_does_not():
    features = load_params().data.feature_names
    limit = settings.max_request_bytes(features, 1024)
    longest = {name: -1.7976931348623157e308 for name in features}
    assert len(json.dumps({"instances": [longest] * 1024}, indent=1)) < limit
    assert len(json.dumps({"instances": [longest] * 2200})) > limit
    flat = [-1.7976931348623157e308] * (1024 * len(features))
    v2 = {"inputs": [{"name": "input-0", "shape": [1024, len(features)], "datatype": "FP64", "data": flat}]}
    assert len(json.dumps(v2)) < limit


def test_handler_spec_carries_ranges_and_rotation_from_params():
    spec = settings.handler_spec(load_params())
    [feature] = bounded(1)
    assert spec["feature_ranges"][feature.name] == [feature.min, feature.max]
    log = spec["inference_log"]
    assert log["rotate_bytes"] == 64 << 20 and log["rotate_seconds"] == 3600 and log["keep_files"] == 48

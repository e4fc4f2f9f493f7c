# The serving image: TorchServe with the reviewed model's .mar baked in. Only serving dependencies
# (torch CPU, torchserve, orjson): no mlflow, dvc or evidently. Build after `mlops archive`:
#   podman build --build-arg MODEL_NAME=breast-cancer --build-arg MODEL_VERSION=3 \
#     --build-arg GIT_SHA=$(git rev-parse HEAD) --secret id=extra_ca,src=/etc/ssl/certs/ca-certificates.crt -t IMAGE .
# docs/serving.md explains the choices (token auth, addresses, tuning).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# Debian's python3 (3.11), a headless Java 17 for TorchServe's frontend, tini as init.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv openjdk-17-jre-headless ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*

# Every Python dependency comes from the lock, serve/requirements.txt (pip-compile --generate-hashes from
# serve/requirements.in): pip refuses any file whose sha256 is not in it, torch's CPU wheel included,
# wherever it comes from. torch: the PyTorch CPU index by default; offline builds pass TORCH_INDEX= and
# PIP_FIND_LINKS pointing at a local wheel directory (the same file, so the same hash). The extra_ca
# secret (a CA bundle for a TLS-inspecting proxy) is used only during this step, never stored in a layer.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=
COPY serve/requirements.txt /opt/serve/requirements.txt
RUN --mount=type=secret,id=extra_ca \
    if [ -s /run/secrets/extra_ca ]; then export PIP_CERT=/run/secrets/extra_ca; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes --only-binary :all: \
      ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} ${PIP_FIND_LINKS:+--find-links "$PIP_FIND_LINKS"} \
      -r /opt/serve/requirements.txt \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && rm -rf /opt/venv/lib/python3*/site-packages/torch/include /opt/venv/lib/python3*/site-packages/torch/share

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin model-server \
 && mkdir -p /home/model-server/run /home/model-server/logs /home/model-server/model-store \
 && chown -R model-server:model-server /home/model-server

# No serve/__init__.py: `serve` stays a namespace package, so the worker finds the handler package the
# .mar carries (serve/handler/ beside its entry file) as well as these modules.
COPY serve/settings.py serve/client.py serve/healthcheck.py /opt/serve/serve/
COPY serve/config.properties serve/log4j2.xml serve/metrics.yaml /opt/serve/serve/

ARG MODEL_NAME=breast-cancer
COPY --chown=model-server:model-server model_store/${MODEL_NAME}.mar /home/model-server/model-store/

# TorchServe's max_request_size for serve.max_batch_rows rows: `python -m serve.settings max-request-size`
# prints it for the current params.yaml (tests/serve/test_settings.py keeps this default equal to it).
ARG MAX_REQUEST_SIZE=1672192
ARG MODEL_VERSION=0
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="${MODEL_NAME}" \
      org.opencontainers.image.description="TorchServe image for model ${MODEL_NAME} version ${MODEL_VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.version="${MODEL_VERSION}" \
      ai.mlops.model.name="${MODEL_NAME}" \
      ai.mlops.model.version="${MODEL_VERSION}"

# Inference listens on all interfaces of the container's own network namespace: publish it as
# -p 127.0.0.1:8080:8080, or put the gate (deploy/gate) or your ingress in front. Management and metrics
# stay inside the container (127.0.0.1) unless TS_METRICS_ADDRESS is set at run time: scrape through the
# gate's metrics port or a sidecar (docs/serving.md).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/serve \
    PYTHONDONTWRITEBYTECODE=1 \
    MLOPS_MODEL_NAME=${MODEL_NAME} \
    TS_INFERENCE_ADDRESS=http://0.0.0.0:8080 \
    TS_MANAGEMENT_ADDRESS=http://127.0.0.1:8081 \
    TS_METRICS_ADDRESS=http://127.0.0.1:8082 \
    TS_METRICS_CONFIG=/opt/serve/serve/metrics.yaml \
    TS_MAX_REQUEST_SIZE=${MAX_REQUEST_SIZE} \
    LOG_LOCATION=/home/model-server/logs/torchserve \
    METRICS_LOCATION=/home/model-server/logs/torchserve \
    MLOPS_INFERENCE_LOG_DIR=/home/model-server/logs/inference \
    MLOPS_KEY_FILE=/home/model-server/run/key_file.json

USER 1000:1000
WORKDIR /home/model-server/run
VOLUME ["/home/model-server/logs"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["python3", "-m", "serve.healthcheck"]
# tini as PID 1 passes `docker stop`'s SIGTERM to the whole group, so Java and the workers shut down cleanly.
# The watchdog restarts TorchServe when its frontend wedges (a direct-memory OutOfMemoryError, which no JVM
# flag turns into an exit, or 3 failed pings) and exits 70 after 5 restarts in 10 minutes.
ENTRYPOINT ["/usr/bin/tini", "-g", "--"]
CMD ["python3", "-m", "serve.healthcheck", "--supervise", "--", \
     "torchserve", "--start", "--foreground", "--ncs", "--ts-config", "/opt/serve/serve/config.properties", \
     "--log-config", "/opt/serve/serve/log4j2.xml", "--model-store", "/home/model-server/model-store"]

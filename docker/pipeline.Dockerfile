# The pipeline image: every TFX component on Kubeflow runs in it (KubeflowV2DagRunner's default_image),
# and so can `tfxpipe run` on any machine with Docker. It carries the modern stack (TFX 1.21 / Python 3.13,
# requirements/lock-modern.txt), whose wheels need glibc >= 2.39: Debian 13 (trixie) has 2.41.
# Build from the repository root:
#   docker build -f docker/pipeline.Dockerfile -t tfxpipe/pipeline:0.1.0 .
# The CUDA variant (NVIDIA GPUs; the host or node supplies the driver, e.g. `docker run --gpus all` or a
# nvidia.com/gpu limit) adds the CUDA libraries TensorFlow's `and-cuda` extra names, pinned in
# requirements/lock-modern-cuda.txt (docs/gpu.md):
#   docker build -f docker/pipeline.Dockerfile --build-arg ACCELERATOR=cuda -t tfxpipe/pipeline:0.1.0-cuda .
FROM python:3.13-slim-trixie AS build

# cpu | cuda
ARG ACCELERATOR=cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# pyfarmhash (needed by TFX) has no wheel for Python 3.13: it is compiled in this stage, which the final
# image leaves behind together with the compiler.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.12 \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv

# Dependencies first, from the lock only, so code changes do not re-install the stack.
COPY requirements/lock-modern.txt requirements/lock-modern-cuda.txt /src/requirements/
RUN pip install --no-deps -r /src/requirements/lock-modern.txt \
    && if [ "$ACCELERATOR" = cuda ]; then pip install --no-deps -r /src/requirements/lock-modern-cuda.txt; fi

COPY setup.py pyproject.toml README.md /src/
COPY pipeline /src/pipeline
COPY components /src/components
COPY trainer /src/trainer
COPY serving /src/serving
RUN pip install --no-deps --no-build-isolation /src

FROM python:3.13-slim-trixie

# TF_FORCE_GPU_ALLOW_GROWTH: every TensorFlow process in the container (Beam workers running Transform or
# TFMA, the trainer) takes GPU memory as it needs it instead of all of it at start-up, so they can share
# a device; a no-op without GPUs.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    PATH=/opt/venv/bin:$PATH

COPY --from=build /opt/venv /opt/venv
# Configs (curated schemas) and the bundled data, at the paths the Kubeflow compile maps local files to
# (kubeflow.project_root: /app).
WORKDIR /app
COPY configs configs
COPY data data
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin tfxpipe

USER 10001
# A batch image (one pipeline component per container): nothing long-lived to health-check.
HEALTHCHECK NONE
ENTRYPOINT ["tfxpipe"]
CMD ["--help"]

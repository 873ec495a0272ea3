# The pipeline image: every TFX component on Kubeflow runs in it (KubeflowV2DagRunner's default_image),
# and so can `tfxpipe run` on any machine with Docker. It carries the modern stack (TFX 1.21 / Python 3.13,
# requirements/lock-modern.txt), whose wheels need glibc >= 2.39: Debian 13 (trixie) has 2.41.
# Build from the repository root:
#   docker build -f docker/pipeline.Dockerfile -t tfxpipe/pipeline:0.1.0 .
FROM python:3.13-slim-trixie AS build

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
COPY requirements/lock-modern.txt /src/requirements/lock-modern.txt
RUN pip install --no-deps -r /src/requirements/lock-modern.txt

COPY setup.py pyproject.toml README.md /src/
COPY pipeline /src/pipeline
COPY components /src/components
COPY trainer /src/trainer
COPY serving /src/serving
RUN pip install --no-deps --no-build-isolation /src

FROM python:3.13-slim-trixie

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
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

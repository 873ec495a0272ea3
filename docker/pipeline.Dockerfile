# The pipeline image: every TFX component on Kubeflow runs in it (KubeflowV2DagRunner's default_image),
# and so can `tfxpipe run` on any machine with Docker. Build from the repository root:
#   docker build -f docker/pipeline.Dockerfile -t tfxpipe/pipeline:0.1.0 .
FROM python:3.10.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from the lock only, so code changes do not re-install the stack.
COPY requirements/lock.txt requirements/lock.txt
RUN pip install --no-deps -r requirements/lock.txt

# The project: packages, configs (curated schemas) and the bundled data, at the paths the Kubeflow
# compile maps local files to (kubeflow.project_root: /app).
COPY setup.py pyproject.toml README.md ./
COPY pipeline pipeline
COPY components components
COPY trainer trainer
COPY serving serving
COPY configs configs
COPY data data
RUN pip install --no-deps --no-build-isolation . \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin tfxpipe

USER 10001
# A batch image (one pipeline component per container): nothing long-lived to health-check.
HEALTHCHECK NONE
ENTRYPOINT ["tfxpipe"]
CMD ["--help"]

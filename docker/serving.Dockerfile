# TensorFlow Serving with our model server, batching and monitoring configs. The model is NOT baked in:
# mount it at /models/<name>/<version>/ (a volume, a PVC) or point base_path at object storage.
# Build from the repository root:
#   docker build -f docker/serving.Dockerfile -t tfxpipe/serving:0.1.0 .
# Bake a model in only when asked: --build-arg MODEL_DIR=runs/penguin/serving_model/penguin
# Another config's model: --build-arg MODEL_NAME=<its model_name> (models.config then serves that name).
FROM tensorflow/serving:2.16.1

ARG MODEL_NAME=penguin
ARG MODEL_DIR=docker/no-model

# The serving configs' one copy lives with the Kubernetes manifests (configs/serving links to it).
COPY serving/k8s/base/config/ /etc/tfserving/
# The shipped models.config serves penguin; serve MODEL_NAME from /models/MODEL_NAME instead.
RUN sed -i -e "s#name: \"penguin\"#name: \"${MODEL_NAME}\"#" -e "s#\"/models/penguin\"#\"/models/${MODEL_NAME}\"#" \
        /etc/tfserving/models.config
# By default only a README lands in /models/<name>/; a MODEL_DIR of versions bakes the model in.
COPY ${MODEL_DIR}/ /models/${MODEL_NAME}/

RUN groupadd --gid 10001 tfserving \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tfserving

USER 10001
EXPOSE 8500 8501
# checkov:skip=CKV_DOCKER_2:Kubernetes probes /v1/models/<name> (serving/k8s); the base image has no HTTP client for a HEALTHCHECK
ENTRYPOINT ["tensorflow_model_server"]
CMD ["--port=8500", "--rest_api_port=8501", \
     "--model_config_file=/etc/tfserving/models.config", \
     "--enable_batching=true", "--batching_parameters_file=/etc/tfserving/batching.config", \
     "--monitoring_config_file=/etc/tfserving/monitoring.config", \
     "--file_system_poll_wait_seconds=30"]

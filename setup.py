"""Distribution `tfxpipe`: the pipeline, its custom components, the trainer and the model server.

Dependencies are pinned per stack and installed from there (`make venv`): requirements/lock.txt (TFX 1.16,
Python 3.10) and requirements/lock-modern.txt (TFX 1.21, Python 3.13). The ranges below only state what
the code needs, so `pip install .` into an existing TFX 1.16..1.21 environment works. TFX 1.21's kfp extra
is empty on Python >= 3.12, so kfp (compile needs its kfp-pipeline-spec, submit its client) is named here.
"""
from setuptools import find_packages, setup

setup(
    name="tfxpipe",
    version="0.1.0",
    description="End-to-end TFX pipeline: validate, transform, train (MirroredStrategy), evaluate, "
    "push and serve with a TensorFlow-Serving-compatible API.",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["pipeline*", "components*", "trainer*", "serving*"]),
    include_package_data=True,
    # The REST API's description, and the kustomize tree `tfxpipe deploy` renders, so that it works from an
    # installed wheel too (no MANIFEST.in to pick them up).
    package_data={"serving": ["openapi.yaml", "k8s/**/*.yaml", "k8s/**/*.config"],
                  "pipeline": ["templates/*.j2"]},  # the HTML run report's template
    install_requires=[
        "tfx[kfp]>=1.16,<1.22; python_version < '3.12'",
        "tfx>=1.16,<1.22; python_version >= '3.12'",
        "kfp>=2.17,<3; python_version >= '3.12'",
        "tensorboard",  # the Trainer's TensorBoard callback; TF >= 2.20 no longer pulls it in
        "dill",
        "pydantic>=2",
        "PyYAML",
        "click>=8",
        "rich",
        "Jinja2",  # the HTML run report
        "matplotlib",  # its charts (SVG, no GUI backend)
        "starlette",
        "uvicorn",
        "httpx",
        "prometheus-client",
        "tensorflow-serving-api>=2.16,<2.22",
    ],
    entry_points={"console_scripts": ["tfxpipe=pipeline.cli:entrypoint"]},
)

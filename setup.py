"""Distribution `tfxpipe`: the pipeline, its custom components, the trainer and the model server.

Dependencies are pinned in requirements/lock.txt and installed from there (`make venv`); the ranges
below only state what the code needs, so `pip install .` into an existing TFX 1.16 environment works.
"""
from setuptools import find_packages, setup

setup(
    name="tfxpipe",
    version="0.1.0",
    description="End-to-end TFX pipeline: validate, transform, train (MirroredStrategy), evaluate, "
    "push and serve with a TensorFlow-Serving-compatible API.",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["pipeline*", "components*", "trainer*", "serving*"]),
    include_package_data=True,
    # The REST API's description, and the kustomize tree `tfxpipe deploy` renders, so that it works from an
    # installed wheel too (no MANIFEST.in to pick them up).
    package_data={"serving": ["openapi.yaml", "k8s/**/*.yaml", "k8s/**/*.config"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "dill",
        "pydantic>=2",
        "PyYAML",
        "click>=8",
        "rich",
        "starlette",
        "uvicorn",
        "httpx",
        "prometheus-client",
        "tensorflow-serving-api==2.16.1",
    ],
    entry_points={"console_scripts": ["tfxpipe=pipeline.cli:entrypoint"]},
)

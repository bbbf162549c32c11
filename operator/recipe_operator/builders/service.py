"""Headless Service: DNS names for pods so rank 0 is reachable as <job>-0.<service>."""

from __future__ import annotations

from typing import Any

from recipe_api.contract import LABEL_JOB_NAME, METRICS_PORT_NAME
from recipe_api.v1alpha1 import RecipeTrainingJob

from .common import object_meta, service_name

MASTER_PORT = 29500
MASTER_PORT_NAME = "rendezvous"


def build_service(job: RecipeTrainingJob, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(job, service_name(job), uid),
        "spec": {
            "clusterIP": "None",
            # Ranks resolve each other before they are Ready (they become ready only by training).
            "publishNotReadyAddresses": True,
            "selector": {LABEL_JOB_NAME: job.metadata.name},
            "ports": [
                {"name": MASTER_PORT_NAME, "port": MASTER_PORT, "targetPort": MASTER_PORT, "protocol": "TCP"},
                {
                    "name": METRICS_PORT_NAME,
                    "port": job.spec.metrics.port,
                    "targetPort": job.spec.metrics.port,
                    "protocol": "TCP",
                },
            ],
        },
    }

"""One engine, wired the same way for both front ends: AWS clients behind the global rate limit, and
the cluster's keys read through the API server when there is a cluster to ask."""

from __future__ import annotations

from typing import Any

from webhook.aws.calls import RateLimiter
from webhook.aws.session import AwsClients
from webhook.provisioner.clusterkeys import reader
from webhook.provisioner.engine import Engine

# A burst lets one reconcile's dozen reads go at once; the rate bounds a storm of objects.
BURST = 10


def engine(cluster_name: str, api: Any | None, probe: tuple[str, str] | None, calls_per_second: float) -> Engine:
    """An :class:`Engine` for ``cluster_name``; ``api`` None: no cluster (keys from the objects only).

    Raises :class:`~webhook.aws.session.Boto3Missing` without the ``provisioner`` extra.
    """
    aws = AwsClients(limiter=RateLimiter(calls_per_second, burst=BURST))
    built = Engine(cluster_name=cluster_name, aws=aws)
    if api is not None:
        built.cluster_keys = reader(api, probe)
    return built

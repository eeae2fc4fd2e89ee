"""The controller's Prometheus metrics (on the default registry, served at its /metrics).

One set for every kind the process reconciles, each series labelled with its ``kind`` (IRSAIssuer,
IRSARole, ClusterIRSARole); the series of the three kinds exist from the start (at zero), so that a
query or an alert never meets a missing series, except ``kind_served``, which exists for the kinds
this process runs (0 would say a CRD is missing). Leadership is the process's (one Lease for every
kind): unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from webhook.provisioner.model import ISSUER_KIND
from webhook.provisioner.rolemodel import CLUSTER_ROLE_KIND, ROLE_KIND

KINDS = (ISSUER_KIND, ROLE_KIND, CLUSTER_ROLE_KIND)
RESULTS = ("success", "retry", "terminal", "error", "deleted")
RESTART_REASONS = ("closed", "read_timeout", "gone", "error")
PARSE_SOURCES = ("list", "watch")

RECONCILES = Counter(
    "irsa_webhook_provisioner_reconciles_total",
    "Reconciles by kind and result: success (in sync, resynced later), retry (a retryable error: backed "
    "off), terminal (nothing is retried until the object changes), error (an unexpected failure or an API "
    "error writing the object: backed off), deleted (the AWS side cleaned up, the finalizer removed).",
    ["kind", "result"],
)
QUEUE_DEPTH = Gauge("irsa_webhook_provisioner_queue_depth", "Objects due for a reconcile now, by kind.", ["kind"])
LEADER = Gauge("irsa_webhook_provisioner_leader", "1 while this replica holds the leader Lease (or runs without one).")
LAST_SUCCESS = Gauge(
    "irsa_webhook_provisioner_last_success_timestamp_seconds",
    "Unix time of the last reconcile that ended in sync, by kind.",
    ["kind"],
)
OBJECTS = Gauge("irsa_webhook_provisioner_objects", "Objects held in the watch cache, by kind.", ["kind"])
SERVED = Gauge(
    "irsa_webhook_provisioner_kind_served",
    "1 while the API server serves the kind (its CRD is installed), 0 while it answers 404 (the kind is "
    "waited for, and does not hold readiness back).",
    ["kind"],
)
WATCH_RESTARTS = Counter(
    "irsa_webhook_provisioner_watch_restarts_total",
    "Restarts of the watch of the provisioner's objects, by kind and reason (closed, read_timeout, gone, error).",
    ["kind", "reason"],
)
PARSE_ERRORS = Counter(
    "irsa_webhook_provisioner_parse_errors_total",
    "Objects that could not be read and were skipped (logged by name), by kind and source (list, watch).",
    ["kind", "source"],
)


@dataclass(frozen=True)
class KindMetrics:
    """The series of one kind."""

    results: dict[str, Counter]
    queue_depth: Gauge
    last_success: Gauge
    objects: Gauge
    watch_restarts: dict[str, Counter]
    parse_errors: dict[str, Counter]


def for_kind(kind: str) -> KindMetrics:
    return KindMetrics(
        results={result: RECONCILES.labels(kind, result) for result in RESULTS},
        queue_depth=QUEUE_DEPTH.labels(kind),
        last_success=LAST_SUCCESS.labels(kind),
        objects=OBJECTS.labels(kind),
        watch_restarts={reason: WATCH_RESTARTS.labels(kind, reason) for reason in RESTART_REASONS},
        parse_errors={source: PARSE_ERRORS.labels(kind, source) for source in PARSE_SOURCES},
    )


for _kind in KINDS:  # every series present from the start
    for_kind(_kind)

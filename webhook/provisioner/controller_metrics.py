"""The controller's Prometheus metrics (on the default registry, served at its /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RESULTS = ("success", "retry", "terminal", "error", "deleted")

RECONCILES = Counter(
    "irsa_webhook_provisioner_reconciles_total",
    "Reconciles by result: success (in sync, resynced later), retry (a retryable error: backed off), "
    "terminal (nothing is retried until the object changes), error (an unexpected failure or an API "
    "error writing the object: backed off), deleted (the AWS side cleaned up, the finalizer removed).",
    ["result"],
)
RECONCILE_RESULTS = {result: RECONCILES.labels(result) for result in RESULTS}
QUEUE_DEPTH = Gauge("irsa_webhook_provisioner_queue_depth", "Objects due for a reconcile now.")
LEADER = Gauge("irsa_webhook_provisioner_leader", "1 while this replica holds the leader Lease (or runs without one).")
LAST_SUCCESS = Gauge(
    "irsa_webhook_provisioner_last_success_timestamp_seconds",
    "Unix time of the last reconcile that ended in sync.",
)
OBJECTS = Gauge("irsa_webhook_provisioner_objects", "Objects held in the watch cache.")
WATCH_RESTARTS = Counter(
    "irsa_webhook_provisioner_watch_restarts_total",
    "Restarts of the watch of the provisioner's objects, by reason (closed, read_timeout, gone, error).",
    ["reason"],
)
WATCH_RESTART_REASONS = {
    reason: WATCH_RESTARTS.labels(reason) for reason in ("closed", "read_timeout", "gone", "error")
}
PARSE_ERRORS = Counter(
    "irsa_webhook_provisioner_parse_errors_total",
    "Objects that could not be read and were skipped (logged by name), by source (list, watch).",
    ["source"],
)
PARSE_ERRORS_BY_SOURCE = {source: PARSE_ERRORS.labels(source) for source in ("list", "watch")}

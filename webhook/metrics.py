"""Prometheus metrics, served on the plain-HTTP metrics port .

Defined once at import on the default registry, which also carries the process and GC collectors.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "irsa_webhook_admission_requests_total",
    "Admission requests by outcome (mutated, not_mutated, ignored, denied, bad_request, error).",
    ["outcome"],
)
LATENCY = Histogram(
    "irsa_webhook_admission_duration_seconds",
    "Time to answer an admission request, from body read to response encoded.",
    # Admission budgets are milliseconds: buckets from 100 µs to the 10 s webhook timeout.
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
MUTATIONS = Counter("irsa_webhook_mutations_total", "Pods mutated, by credential mode.", ["mode"])
WARNINGS = Counter("irsa_webhook_warnings_total", "Admission warnings returned, by kind.", ["kind"])
MISSING_SERVICE_ACCOUNTS = Counter(
    "irsa_webhook_service_account_not_found_total", "Pods whose ServiceAccount could not be found."
)
CACHE_SIZE = Gauge("irsa_webhook_service_account_cache_size", "ServiceAccounts held in the cache.")
CACHE_SYNCED = Gauge("irsa_webhook_service_account_cache_synced", "1 once the first ServiceAccount list completed.")
LIVE_LOOKUPS = Counter(
    "irsa_webhook_service_account_live_lookups_total",
    "Live GETs of a ServiceAccount on a cache miss, by result (found, not_found, error, rate_limited; "
    "deadline: no lookup thread was free before the 1 s deadline, so no GET was made).",
    ["result"],
)
WATCH_RESTARTS = Counter(
    "irsa_webhook_service_account_watch_restarts_total",
    "ServiceAccount watch restarts, by reason: closed (the server ended the watch, e.g. its timeout; "
    "resumed), read_timeout (nothing received for the client read timeout; resumed), gone (HTTP 410: "
    "resourceVersion expired; relisted), error (any other failure; retried with backoff).",
    ["reason"],
)
PARSE_ERRORS = Counter(
    "irsa_webhook_service_account_parse_errors_total",
    "ServiceAccounts that could not be parsed and were skipped (logged by namespace/name), by source "
    "(list, watch, live).",
    ["source"],
)
CERT_EXPIRY = Gauge(
    "irsa_webhook_certificate_expiry_timestamp_seconds", "NotAfter of the serving certificate, Unix time."
)
CERT_RELOADS = Counter("irsa_webhook_certificate_reloads_total", "Serving certificate reloads, by result.", ["result"])

# Label children bound once: ``labels()`` takes a lock and a dict lookup on every call, and the
# series exist (at 0) from the start, which is what dashboards and rate() want.
OUTCOMES = {
    outcome: REQUESTS.labels(outcome)
    for outcome in ("mutated", "not_mutated", "ignored", "denied", "bad_request", "error")
}
IRSA_MUTATIONS = MUTATIONS.labels("irsa")
WATCH_RESTART_REASONS = {
    reason: WATCH_RESTARTS.labels(reason) for reason in ("closed", "read_timeout", "gone", "error")
}
PARSE_ERRORS_BY_SOURCE = {source: PARSE_ERRORS.labels(source) for source in ("list", "watch", "live")}

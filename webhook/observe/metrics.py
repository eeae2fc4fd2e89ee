"""Prometheus metrics, served on the plain-HTTP metrics port .

Defined once at import on the default registry, which also carries the process and GC collectors.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from decimal import Decimal

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest

from webhook.core import outcomes
from webhook.core.records import CONTAINER_CREDENTIALS, STS_WEB_IDENTITY

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
SELF_MANAGED_TLS_WRITES = Counter(
    "irsa_webhook_self_managed_tls_writes_total",
    "Self-managed certificate writes, by step (issue, pending, ca-bundle, promote, prune) and result "
    "(written, conflict: another replica wrote first, this one read again).",
    ["step", "result"],
)
SELF_MANAGED_TLS_SYNC_ERRORS = Counter(
    "irsa_webhook_self_managed_tls_sync_errors_total",
    "Self-managed certificate passes that failed (API errors, a missing webhook configuration); retried with backoff.",
)

# Label children bound once: ``labels()`` takes a lock and a dict lookup on every call, and the
# series exist (at 0) from the start, which is what dashboards and rate() want.
OUTCOMES = {outcome: REQUESTS.labels(outcome) for outcome in outcomes.OUTCOMES}
IRSA_MUTATIONS = MUTATIONS.labels("irsa")
WATCH_RESTART_REASONS = {
    reason: WATCH_RESTARTS.labels(reason) for reason in ("closed", "read_timeout", "gone", "error")
}
PARSE_ERRORS_BY_SOURCE = {source: PARSE_ERRORS.labels(source) for source in ("list", "watch", "live")}


# --- upstream's series ---------------------------------------------------------------------------
# The AWS pod identity webhook's own metrics, so that dashboards and alerts built on it keep working
# after an image swap: the same names, types, labels and buckets. Its Go client exposes a counter
# under its bare name (``http_request_count``); prometheus_client always adds ``_total`` (and a
# ``_created`` series), so these are kept here and written out by hand, after the registry's
# families, in the text format (see :func:`exposition`). One lock and a few integer additions per
# request: no labels() lookups on the hot path.
UPSTREAM_LATENCY_BUCKETS = tuple(125_000.0 * 2**k for k in range(7))  # µs: 125 ms to 8 s, as upstream
# Request methods label ``verb`` as they are; anything else (a client can send any token) is "other",
# so a hostile client cannot grow the series without bound [ours].
_FIRST_BOUND = UPSTREAM_LATENCY_BUCKETS[0]
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
UPSTREAM_PATH = "/mutate"  # upstream instruments only its /mutate route


class UpstreamMetrics:
    """``http_request_count{verb,path,code}`` (counter), ``http_request_latencies{verb,path}``
    (histogram, µs), ``http_request_duration_microseconds{verb,path}`` (summary: count and sum, no
    quantiles, as upstream configures it), ``pod_identity_webhook_pod_count{method}`` (counter),
    ``pod_identity_webhook_missing_sa_count`` (counter), ``pod_identity_webhook_used`` (gauge).

    Series that upstream creates on first use exist here at 0 from the start (POST 200, both
    methods), which is what ``rate()`` wants; every other series appears on first use, as upstream's.
    """

    def __init__(self) -> None:
        self._requests: dict[tuple[str, int], int] = {("POST", 200): 0}
        # Per verb: one count per bucket and one for above the last (not cumulative), then the sum.
        self._latency: dict[str, list[float]] = {"POST": self._new_latency()}
        self._pods = {STS_WEB_IDENTITY: 0, CONTAINER_CREDENTIALS: 0}
        self._missing_sa = 0
        self._used = False
        self.used_probe: Callable[[], bool] = lambda: False
        """Asked at scrape time until it says True once: the server sets it to "a ServiceAccount is cached"."""

    @staticmethod
    def _new_latency() -> list[float]:
        return [0.0] * (len(UPSTREAM_LATENCY_BUCKETS) + 2)

    def observe_request(self, verb: str, code: int, seconds: float) -> None:
        """One answered request to /mutate: its method, status and duration.

        Called on the event loop only, so the counts need no lock (the scrape reads copies); almost
        every request is a POST answered 200 within the first bucket (125 ms), which is kept to one
        dictionary lookup and two additions.
        """
        micros = float(int(seconds * 1_000_000))  # whole microseconds, as upstream truncates them
        if verb not in _HTTP_METHODS:
            verb = "other"
        key = (verb, code)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(verb)
        if latency is None:
            latency = self._latency[verb] = self._new_latency()
        # first bucket whose bound >= micros
        index = 0 if micros <= _FIRST_BOUND else bisect_left(UPSTREAM_LATENCY_BUCKETS, micros)
        latency[index] += 1
        latency[-1] += micros

    def pod_mutated(self, mode: str) -> None:
        """A pod got credentials; ``mode`` is the identity's (``sts_web_identity``, ``container_credentials``)."""
        self._pods[mode] = self._pods.get(mode, 0) + 1

    def missing_service_account(self) -> None:
        self._missing_sa += 1

    def render(self) -> str:
        """The families in Prometheus text format 0.0.4, as upstream's Go client writes them."""
        if not self._used and self.used_probe():
            self._used = True  # upstream's gauge never goes back to 0 either
        # Writers run on the event loop, this on the metrics thread: copy each table in one C-level
        # step (atomic under the GIL), then format the copies.
        requests = sorted(self._requests.items())
        latency = sorted((verb, list(counts)) for verb, counts in list(self._latency.items()))
        pods = sorted(self._pods.items())
        missing = self._missing_sa
        out: list[str] = []
        family = out.append
        family("# HELP http_request_count Requests to /mutate by verb, path and response code (upstream's name).\n")
        family("# TYPE http_request_count counter\n")
        for (verb, code), count in requests:
            family(f'http_request_count{{code="{code}",path="{UPSTREAM_PATH}",verb="{verb}"}} {count}\n')
        labelled = [(f'path="{UPSTREAM_PATH}",verb="{verb}"', counts) for verb, counts in latency]
        family(
            "# HELP http_request_duration_microseconds Time to answer /mutate in microseconds, count and sum "
            "(upstream's name).\n"
        )
        family("# TYPE http_request_duration_microseconds summary\n")
        for labels, counts in labelled:
            total = int(sum(counts[:-1]))
            family(f"http_request_duration_microseconds_sum{{{labels}}} {_go_float(counts[-1])}\n")
            family(f"http_request_duration_microseconds_count{{{labels}}} {total}\n")
        family("# HELP http_request_latencies Time to answer /mutate in microseconds (upstream's name).\n")
        family("# TYPE http_request_latencies histogram\n")
        for labels, counts in labelled:
            cumulative = 0
            for bound, in_bucket in zip(UPSTREAM_LATENCY_BUCKETS, counts, strict=False):
                cumulative += int(in_bucket)
                family(f'http_request_latencies_bucket{{{labels},le="{_go_float(bound)}"}} {cumulative}\n')
            cumulative += int(counts[-2])
            family(f'http_request_latencies_bucket{{{labels},le="+Inf"}} {cumulative}\n')
            family(f"http_request_latencies_sum{{{labels}}} {_go_float(counts[-1])}\n")
            family(f"http_request_latencies_count{{{labels}}} {cumulative}\n")
        family(
            "# HELP pod_identity_webhook_missing_sa_count Pods whose ServiceAccount was not found (upstream's name).\n"
        )
        family("# TYPE pod_identity_webhook_missing_sa_count counter\n")
        family(f"pod_identity_webhook_missing_sa_count {missing}\n")
        family("# HELP pod_identity_webhook_pod_count Pods mutated, by credential method (upstream's name).\n")
        family("# TYPE pod_identity_webhook_pod_count counter\n")
        for method, count in pods:
            family(f'pod_identity_webhook_pod_count{{method="{method}"}} {count}\n')
        family("# HELP pod_identity_webhook_used 1 once a ServiceAccount has been cached (upstream's name).\n")
        family("# TYPE pod_identity_webhook_used gauge\n")
        family(f"pod_identity_webhook_used {1 if self._used else 0}\n")
        return "".join(out)


UPSTREAM = UpstreamMetrics()


def _go_float(value: float) -> str:
    """A finite, non-negative ``value`` as Go's ``strconv.FormatFloat(value, 'g', -1, 64)`` writes it,
    which is how upstream's client writes sums and ``le`` bounds: ``125000``, ``1e+06``, ``1.5e+07``
    (prometheus_client writes ``125000.0``, which is another ``le`` label value to a query)."""
    if not value:
        return "0"
    _, digit_tuple, exponent = Decimal(repr(value)).as_tuple()  # repr: the shortest round-trip digits
    all_digits = "".join(map(str, digit_tuple))
    digits = all_digits.rstrip("0") or "0"
    point = len(all_digits) + int(exponent)  # where the decimal point falls in ``digits``
    if not -4 <= point - 1 < 6:  # Go's %e range for the shortest representation
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{mantissa}e{'-' if point < 1 else '+'}{abs(point - 1):02d}"
    if point <= 0:
        return f"0.{'0' * -point}{digits}"
    return digits.ljust(point, "0") if point >= len(digits) else f"{digits[:point]}.{digits[point:]}"


def exposition() -> bytes:
    """What /metrics answers: the registry's families, then upstream's, in Prometheus text format 0.0.4.

    Always the text format, whatever the scraper's Accept header asks for, as upstream's Go handler
    does: in OpenMetrics a counter has to be called ``<name>_total``, and the whole point of the
    upstream families is the names existing dashboards query.
    """
    return generate_latest(REGISTRY) + UPSTREAM.render().encode()


# --- ConfigMap mode (--watch-config-map) --------------------------------------------------------------
CONFIG_MAP_ERRORS = Counter(
    "irsa_webhook_config_map_errors_total",
    "Problems in the pod-identity-webhook ConfigMap, each logged, by reason: invalid_json (the config "
    "key is not a JSON object; the last good map is kept), bad_key (a key that is not <namespace>/<name>; "
    "skipped), invalid_entry (an entry or a field of the wrong type; skipped), unparseable (the object "
    "itself could not be read; the last good map is kept).",
    ["reason"],
)
CONFIG_MAP_ERROR_REASONS = {
    reason: CONFIG_MAP_ERRORS.labels(reason) for reason in ("invalid_json", "bad_key", "invalid_entry", "unparseable")
}
CONFIG_MAP_ENTRIES = Gauge("irsa_webhook_config_map_entries", "Entries of the pod-identity-webhook ConfigMap in use.")
CONFIG_MAP_WATCH_RESTARTS = Counter(
    "irsa_webhook_config_map_watch_restarts_total",
    "ConfigMap watch restarts, by reason (as irsa_webhook_service_account_watch_restarts_total).",
    ["reason"],
)
CONFIG_MAP_WATCH_RESTART_REASONS = {
    reason: CONFIG_MAP_WATCH_RESTARTS.labels(reason) for reason in ("closed", "read_timeout", "gone", "error")
}

# EKS Pod Identity (--watch-container-credentials-config).
CONTAINER_CREDENTIALS_MUTATIONS = MUTATIONS.labels("container_credentials")
CONTAINER_CREDENTIALS_IDENTITIES = Gauge(
    "irsa_webhook_container_credentials_identities",
    "ServiceAccounts listed in the container credentials (EKS Pod Identity) config file in use.",
)
CONTAINER_CREDENTIALS_CONFIG_ERRORS = Counter(
    "irsa_webhook_container_credentials_config_errors_total",
    "Container credentials config files not loaded (the previous identities are kept), each logged once, "
    "by reason: malformed (not the expected JSON), unreadable (the file exists but cannot be read).",
    ["reason"],
)
CONTAINER_CREDENTIALS_CONFIG_ERRORS_BY_REASON = {
    reason: CONTAINER_CREDENTIALS_CONFIG_ERRORS.labels(reason) for reason in ("malformed", "unreadable")
}

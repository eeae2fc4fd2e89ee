"""The flags of ``serve`` and ``mutate`` and the settings they produce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webhook import settings as s
from webhook.flags import Flag, FlagError

# What is injected: shared by `serve` and `mutate`.
MUTATION_FLAGS = (
    Flag(
        "annotation-prefix",
        "str",
        s.DEFAULT_ANNOTATION_PREFIX,
        "prefix of the ServiceAccount and pod annotations",
    ),
    Flag("token-audience", "str", s.DEFAULT_AUDIENCE, "token audience when the ServiceAccount sets none"),
    Flag("token-mount-path", "str", s.DEFAULT_MOUNT_PATH, "where the token volume is mounted in containers"),
    Flag(
        "token-expiration",
        "int",
        s.DEFAULT_TOKEN_EXPIRATION,
        "token lifetime in seconds: below 600 is raised to 600 (as upstream), above 2^32 refused",
    ),
    Flag("aws-default-region", "str", "", "inject AWS_DEFAULT_REGION and AWS_REGION with this value"),
    Flag("sts-regional-endpoint", "bool", False, "inject AWS_STS_REGIONAL_ENDPOINTS=regional by default"),
    Flag("strict", "bool", False, "deny pods whose ServiceAccount or pod configuration is invalid"),
)

# How the server runs. Names follow upstream so its Deployment args work unchanged.
SERVER_FLAGS = (
    Flag("port", "int", 443, "HTTPS port serving /mutate, /healthz and /readyz"),
    Flag("metrics-port", "int", 9999, "plain-HTTP port serving /metrics"),
    Flag(
        "bind-address",
        "str",
        "",
        "address both ports listen on; unset or :: is every IPv4 and IPv6 address, 0.0.0.0 IPv4 only",
    ),
    Flag("tls-cert", "str", "/etc/webhook/certs/tls.crt", "serving certificate (PEM), reloaded when it changes"),
    Flag("tls-key", "str", "/etc/webhook/certs/tls.key", "serving key (PEM), reloaded when it changes"),
    Flag(
        "tls-min-version",
        "str",
        "1.2",
        "minimum TLS version: 1.2 or 1.3 (VersionTLS12 spellings too; 1.0 and 1.1 are raised to 1.2)",
    ),
    Flag(
        "tls-cipher-suites",
        "str",
        "",
        "comma-separated TLS 1.2 cipher suites, IANA names (default: secure set)",
    ),
    Flag("kubeconfig", "str", "", "kubeconfig file (default: in-cluster config)"),
    Flag("kube-api", "str", "", "API server URL, overriding the kubeconfig's"),
    Flag("service-accounts", "str", "", "serve from ServiceAccount manifests on disk instead of a cluster"),
    Flag("service-account-lookup-grace-period", "duration", 0.0, "wait this long for the watch on a cache miss"),
    Flag(
        "service-account-live-lookup",
        "bool",
        True,
        "GET a ServiceAccount from the API server on a cache miss",
    ),
    Flag(
        "resync-period", "duration", 300.0, "restart the ServiceAccount watch this often (resumes, no relist; 0: never)"
    ),
    Flag("max-request-bytes", "int", 8 << 20, "largest AdmissionReview body accepted (413 above)"),
    Flag(
        "shutdown-delay",
        "duration",
        0.0,
        "on SIGTERM, answer /readyz 503 but keep serving this long, so endpoints stop routing here first",
    ),
    Flag(
        "shutdown-timeout",
        "duration",
        20.0,
        "after the shutdown delay, wait at most this long for in-flight requests",
    ),
    Flag("namespace", "str", "", "the webhook's own namespace (upstream compatibility; used in logs)"),
    Flag("service-name", "str", "", "the webhook's Service name (upstream compatibility; used in logs)"),
    Flag("in-cluster", "bool", False, "upstream's CSR certificate mode: refused, use --tls-cert/--tls-key"),
    Flag("logtostderr", "bool", True, "accepted for klog compatibility; logs always go to stderr"),
    Flag("v", "int", 0, "klog verbosity: 4 and above log at debug", short="v"),
)


@dataclass(frozen=True, slots=True)
class ServeConfig:
    settings: s.Settings
    port: int
    metrics_port: int
    bind_address: str
    tls_cert: str
    tls_key: str
    tls_min_version: str
    tls_cipher_suites: str
    kubeconfig: str
    kube_api: str
    service_accounts: str
    lookup_grace: float
    live_lookup: bool
    resync_period: float
    max_request_bytes: int
    shutdown_delay: float
    shutdown_timeout: float
    namespace: str
    service_name: str
    verbosity: int = 0
    # Values that were corrected rather than refused, one line each, for the startup log.
    notes: tuple[str, ...] = ()


def mutation_settings(values: dict[str, Any], notes: list[str] | None = None) -> s.Settings:
    """The mutation settings; a value corrected on the way (as upstream corrects it) adds a line to ``notes``."""
    if not values["token_mount_path"].startswith("/"):
        raise FlagError(f"--token-mount-path must be absolute, got {values['token_mount_path']!r}")
    expiration = values["token_expiration"]
    if expiration > s.MAX_TOKEN_EXPIRATION:
        raise FlagError(
            f"--token-expiration={expiration} is above 2^32 seconds, which kube-apiserver rejects in every pod"
        )
    if expiration < s.MIN_TOKEN_EXPIRATION:
        # Upstream raises it to the minimum kube-apiserver accepts; refusing would break its Deployments.
        if notes is not None:
            notes.append(
                f"--token-expiration={expiration} is below the minimum of {s.MIN_TOKEN_EXPIRATION} seconds: "
                f"using {s.MIN_TOKEN_EXPIRATION}"
            )
        expiration = s.MIN_TOKEN_EXPIRATION
    return s.Settings(
        annotation_prefix=values["annotation_prefix"],
        token_audience=values["token_audience"],
        token_mount_path=values["token_mount_path"],
        token_expiration=expiration,
        aws_default_region=values["aws_default_region"],
        sts_regional_endpoint=values["sts_regional_endpoint"],
        strict=values["strict"],
    )


def serve_config(values: dict[str, Any]) -> ServeConfig:
    if values["in_cluster"]:
        raise FlagError(
            "--in-cluster=true is not supported: upstream's CSR mode needs certificates/v1beta1, gone since "
            "Kubernetes 1.22; give --tls-cert/--tls-key (cert-manager or `irsa-webhook certs`) and --in-cluster=false"
        )
    for name in ("port", "metrics_port"):
        if not 0 <= values[name] <= 65535:
            raise FlagError(f"--{name.replace('_', '-')} must be a port number, got {values[name]}")
    if values["max_request_bytes"] <= 0:
        raise FlagError("--max-request-bytes must be positive")
    for name in ("shutdown_delay", "shutdown_timeout"):
        if values[name] < 0:
            raise FlagError(f"--{name.replace('_', '-')} must not be negative")
    notes: list[str] = []
    settings = mutation_settings(values, notes)
    return ServeConfig(
        settings=settings,
        port=values["port"],
        metrics_port=values["metrics_port"],
        bind_address=values["bind_address"],
        tls_cert=values["tls_cert"],
        tls_key=values["tls_key"],
        tls_min_version=values["tls_min_version"],
        tls_cipher_suites=values["tls_cipher_suites"],
        kubeconfig=values["kubeconfig"],
        kube_api=values["kube_api"],
        service_accounts=values["service_accounts"],
        lookup_grace=values["service_account_lookup_grace_period"],
        live_lookup=values["service_account_live_lookup"],
        resync_period=values["resync_period"],
        max_request_bytes=values["max_request_bytes"],
        shutdown_delay=values["shutdown_delay"],
        shutdown_timeout=values["shutdown_timeout"],
        namespace=values["namespace"],
        service_name=values["service_name"],
        verbosity=values["v"],
        notes=tuple(notes),
    )

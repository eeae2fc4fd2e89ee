"""The flag tables: every flag of ``serve`` and ``mutate`` (upstream's names, Go syntax, environment
variables, defaults and help), in one place, and the subsets the snapshot commands take."""

from __future__ import annotations

import dataclasses
from typing import Any

from webhook.core import settings as s
from webhook.options.flags import Flag

# Upstream's defaults for flags that are accepted only so that its Deployment args work.
UPSTREAM_TLS_SECRET = "pod-identity-webhook"  # noqa: S105 - a Secret's name, not a secret
KLOG_IGNORED = "klog compatibility: accepted and ignored (logs are always JSON lines on stderr)"
# klog's flags besides -v and --logtostderr: (name, kind, klog's default).
KLOG_LAYOUT_FLAGS: tuple[tuple[str, str, Any], ...] = (
    ("alsologtostderr", "bool", False),
    ("add_dir_header", "bool", False),
    ("log_backtrace_at", "str", ""),
    ("log_dir", "str", ""),
    ("log_file", "str", ""),
    ("log_file_max_size", "int", 1800),
    ("one_output", "bool", False),
    ("skip_headers", "bool", False),
    ("skip_log_headers", "bool", False),
    ("stderrthreshold", "str", "2"),
    ("vmodule", "str", ""),
    ("legacy_stderr_threshold_behavior", "bool", True),
)

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
    Flag(
        "role-session-name",
        "str",
        "",
        "'pod': inject AWS_ROLE_SESSION_NAME from the pod's name (downward API) so CloudTrail names the pod; "
        "a ServiceAccount's role-session-name annotation asks for it too (default: off)",
    ),
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
    # Self-managed certificates (webhook.pki): the webhook makes, rotates and publishes its own pair.
    Flag(
        "self-managed-tls-secret",
        "str",
        "",
        "make and rotate the serving pair in this Secret of --namespace, keep the caBundle of "
        "--self-managed-tls-webhook-configuration in step, and write the pair to --tls-cert/--tls-key",
    ),
    Flag(
        "self-managed-tls-webhook-configuration",
        "str",
        "",
        "with --self-managed-tls-secret: the MutatingWebhookConfiguration whose caBundle trusts the pair",
    ),
    Flag(
        "self-managed-tls-hosts",
        "str",
        "",
        "with --self-managed-tls-secret: comma-separated DNS names and IPs of the certificate "
        "(default: <service-name>.<namespace>.svc and .svc.cluster.local)",
    ),
    Flag("self-managed-tls-lifetime", "duration", 2160 * 3600.0, "with --self-managed-tls-secret: pair lifetime"),
    Flag(
        "self-managed-tls-renew-before",
        "duration",
        720 * 3600.0,
        "with --self-managed-tls-secret: rotate this long before expiry (old and new CA both trusted meanwhile)",
    ),
    Flag(
        "self-managed-tls-check-interval",
        "duration",
        60.0,
        "with --self-managed-tls-secret: how often each replica reads the Secret and the caBundle",
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
    Flag(
        "namespace",
        "str",
        "",
        "the webhook's own namespace: where --watch-config-map reads its ConfigMap (required with it)",
    ),
    Flag("service-name", "str", "", "the webhook's Service name (upstream compatibility; used in logs)"),
    # ConfigMap mode: roles from the ConfigMap pod-identity-webhook in --namespace (webhook.sources.configmap).
    Flag("watch-config-map", "bool", False, "also take roles from the ConfigMap pod-identity-webhook in --namespace"),
    # EKS Pod Identity ("container credentials") mode: --watch-container-credentials-config is the only
    # switch; the other five say what a listed ServiceAccount's pods get (webhook.sources.podidentity).
    Flag(
        "watch-container-credentials-config",
        "str",
        "",
        "JSON file of the ServiceAccounts whose pods get EKS Pod Identity; reloaded when it changes",
    ),
    Flag("container-credentials-audience", "str", s.DEFAULT_CC_AUDIENCE, "audience of the Pod Identity token"),
    Flag(
        "container-credentials-token-mount-path",
        "str",
        s.DEFAULT_CC_MOUNT_PATH,
        "where the Pod Identity token volume is mounted in containers",
    ),
    Flag("container-credentials-token-volume-name", "str", s.DEFAULT_CC_VOLUME_NAME, "the Pod Identity token volume"),
    Flag(
        "container-credentials-token-path",
        "str",
        s.DEFAULT_CC_TOKEN_PATH,
        "the token's file name in that volume (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: mount path + this)",
    ),
    Flag(
        "container-credentials-full-uri",
        "str",
        s.DEFAULT_CC_FULL_URI,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI: the EKS Pod Identity agent's credentials endpoint",
    ),
    Flag("in-cluster", "bool", False, "upstream's CSR certificate mode: refused, use --tls-cert/--tls-key"),
    Flag("logtostderr", "bool", True, "accepted for klog compatibility; logs always go to stderr"),
    Flag("v", "int", 0, "klog verbosity: 4 and above log at debug", short="v"),
    # --compose-role-arn (webhook.aws.imds): role names become role ARNs.
    Flag(
        "compose-role-arn",
        "bool",
        False,
        "a role-arn without 'arn:' (s3-reader, team/s3-reader) becomes arn:<partition>:iam::<account>:role/<it>; "
        "account and region come from EC2 instance metadata (IMDSv2) at startup, unless --aws-account-id",
    ),
    Flag(
        "aws-account-id",
        "str",
        "",
        "with --compose-role-arn: the account of composed role ARNs, and no IMDS call (clusters off EC2)",
    ),
    Flag(
        "aws-partition",
        "str",
        "",
        "with --compose-role-arn: the partition of composed role ARNs (default: the region's, aws)",
    ),
    Flag(
        "enable-debugging-handlers",
        "bool",
        False,
        "serve GET /debug/alpha/cache on the metrics port: the cached ServiceAccount identities as JSON",
    ),
    Flag("tls-secret", "str", UPSTREAM_TLS_SECRET, "upstream's --in-cluster=true Secret: accepted, unused"),
    # The rest of klog's flags, which upstream registers: accepted (values klog refuses are refused);
    # their layouts and files are not ours to follow, logs are always JSON lines on stderr.
    *(Flag(name, kind, default, KLOG_IGNORED) for name, kind, default in KLOG_LAYOUT_FLAGS),
)


# The flags of serve's identity sources that the snapshot commands (audit, offline mutate) also take.
POD_IDENTITY_FLAG_NAMES = (
    "watch-container-credentials-config",
    "container-credentials-audience",
    "container-credentials-token-mount-path",
    "container-credentials-token-volume-name",
    "container-credentials-token-path",
    "container-credentials-full-uri",
)
COMPOSE_FLAG_NAMES = ("compose-role-arn", "aws-account-id", "aws-partition")
READ_ONCE_PODIDENTITY_HELP = (
    "as serve: the JSON file of the ServiceAccounts whose pods get EKS Pod Identity (read once)"
)


def server_flags(names: tuple[str, ...], helps: dict[str, str] | None = None) -> tuple[Flag, ...]:
    """serve's flags of these names (same names, environment variables and defaults), in serve's order,
    with the help of some replaced: for a command that reads once what serve follows."""
    helps = helps or {}
    return tuple(
        dataclasses.replace(f, help=helps[f.name]) if f.name in helps else f for f in SERVER_FLAGS if f.name in names
    )


def mutation_flags(names: tuple[str, ...], helps: dict[str, str] | None = None) -> tuple[Flag, ...]:
    """The mutation flags of these names, as :func:`server_flags` picks serve's: for a command that must
    agree with the webhook on a setting (the controller writes the role-arn annotation serve reads)."""
    helps = helps or {}
    return tuple(
        dataclasses.replace(f, help=helps[f.name]) if f.name in helps else f for f in MUTATION_FLAGS if f.name in names
    )

"""The checked configuration records: what ``serve``'s flag values mean (:class:`ServeConfig`) and the
mutation :class:`~webhook.core.settings.Settings` they produce, with a note for every value corrected
as upstream corrects it."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from webhook.core import arn
from webhook.core import settings as s
from webhook.core.annotations import ROLE_SESSION_NAME_POD
from webhook.core.goparse import parse_go_int
from webhook.options.flags import FlagError
from webhook.options.tables import KLOG_IGNORED, KLOG_LAYOUT_FLAGS, UPSTREAM_TLS_SECRET


@dataclass(frozen=True, slots=True)
class SelfManagedTLS:
    """``--self-managed-tls-*``: where the pair is kept and published, what it names, how long it lives."""

    namespace: str
    secret: str
    webhook_configuration: str
    hosts: tuple[str, ...]
    lifetime: float
    renew_before: float
    check_interval: float


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
    container_credentials_config: str = ""  # --watch-container-credentials-config (empty: Pod Identity off)
    watch_config_map: bool = False  # --watch-config-map
    # --compose-role-arn without --aws-account-id: ``serve`` asks IMDS before loading any identity.
    compose_from_imds: bool = False
    aws_partition: str = ""  # --aws-partition as given (empty: the region's)
    debugging_handlers: bool = False  # --enable-debugging-handlers
    self_managed_tls: SelfManagedTLS | None = None  # --self-managed-tls-secret and its flags


# A volume name kube-apiserver accepts: an RFC 1123 label.
_VOLUME_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def container_credentials_settings(values: dict[str, Any]) -> dict[str, str]:
    """The Pod Identity mutation settings (``serve`` only: absent values are the defaults), checked for
    what kube-apiserver would reject in every pod."""
    audience = values.get("container_credentials_audience", s.DEFAULT_CC_AUDIENCE)
    mount_path = values.get("container_credentials_token_mount_path", s.DEFAULT_CC_MOUNT_PATH)
    volume_name = values.get("container_credentials_token_volume_name", s.DEFAULT_CC_VOLUME_NAME)
    token_path = values.get("container_credentials_token_path", s.DEFAULT_CC_TOKEN_PATH)
    full_uri = values.get("container_credentials_full_uri", s.DEFAULT_CC_FULL_URI)
    if not mount_path.startswith("/"):
        raise FlagError(f"--container-credentials-token-mount-path must be absolute, got {mount_path!r}")
    if len(volume_name) > 63 or not _VOLUME_NAME_RE.fullmatch(volume_name):
        raise FlagError(
            f"--container-credentials-token-volume-name must be a DNS label (a-z, 0-9, '-'), got {volume_name!r}"
        )
    if not token_path or token_path.startswith("/") or ".." in token_path.split("/"):
        raise FlagError(f"--container-credentials-token-path must be a relative path without '..', got {token_path!r}")
    return {
        "container_credentials_audience": audience,
        "container_credentials_mount_path": mount_path,
        "container_credentials_volume_name": volume_name,
        "container_credentials_token_path": token_path,
        "container_credentials_full_uri": full_uri,
    }


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
    session_name = values["role_session_name"]
    if session_name not in ("", ROLE_SESSION_NAME_POD):
        raise FlagError(f"--role-session-name must be {ROLE_SESSION_NAME_POD!r} or empty (off), got {session_name!r}")
    return s.Settings(
        annotation_prefix=values["annotation_prefix"],
        token_audience=values["token_audience"],
        token_mount_path=values["token_mount_path"],
        token_expiration=expiration,
        aws_default_region=values["aws_default_region"],
        sts_regional_endpoint=values["sts_regional_endpoint"],
        strict=values["strict"],
        role_session_name=session_name == ROLE_SESSION_NAME_POD,
        **container_credentials_settings(values),
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
    settings, compose_from_imds = compose_settings(values, settings, notes)
    notes.extend(accepted_only_notes(values))
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
        container_credentials_config=values["watch_container_credentials_config"],
        watch_config_map=values["watch_config_map"],
        compose_from_imds=compose_from_imds,
        aws_partition=values["aws_partition"],
        debugging_handlers=values["enable_debugging_handlers"],
        self_managed_tls=self_managed_tls(values),
    )


# A Kubernetes object name (a DNS subdomain), as the API server checks it.
_OBJECT_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def self_managed_tls(values: dict[str, Any]) -> SelfManagedTLS | None:
    """The self-managed certificate settings, or None when --self-managed-tls-secret is not set;
    FlagError for a combination that could not keep a certificate valid."""
    secret = values["self_managed_tls_secret"]
    webhook = values["self_managed_tls_webhook_configuration"]
    if not secret:
        if webhook or values["self_managed_tls_hosts"]:
            raise FlagError(
                "--self-managed-tls-webhook-configuration and --self-managed-tls-hosts need --self-managed-tls-secret"
            )
        return None
    namespace = values["namespace"]
    if values["service_accounts"]:
        raise FlagError(
            "--self-managed-tls-secret keeps its pair in the cluster: it cannot be used with --service-accounts"
        )
    if not namespace:
        raise FlagError("--self-managed-tls-secret needs --namespace: the namespace of the Secret (the webhook's own)")
    if not webhook:
        raise FlagError(
            "--self-managed-tls-secret needs --self-managed-tls-webhook-configuration: the "
            "MutatingWebhookConfiguration whose caBundle must trust the pair"
        )
    for flag, name in (("secret", secret), ("webhook-configuration", webhook)):
        if len(name) > 253 or not _OBJECT_NAME_RE.fullmatch(name):
            raise FlagError(f"--self-managed-tls-{flag} must be a Kubernetes object name, got {name!r}")
    hosts = tuple(dict.fromkeys(h.strip() for h in values["self_managed_tls_hosts"].split(",") if h.strip()))
    if not hosts:
        service = values["service_name"]
        if not service:
            raise FlagError(
                "--self-managed-tls-secret needs --self-managed-tls-hosts, or --service-name to name "
                "<service>.<namespace>.svc"
            )
        hosts = (f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local")
    lifetime = values["self_managed_tls_lifetime"]
    renew_before = values["self_managed_tls_renew_before"]
    interval = values["self_managed_tls_check_interval"]
    if not 0 < renew_before < lifetime:
        raise FlagError(
            "--self-managed-tls-renew-before must be positive and shorter than --self-managed-tls-lifetime "
            f"(got {renew_before:g}s and {lifetime:g}s)"
        )
    if not 0 < interval < renew_before:
        raise FlagError(
            "--self-managed-tls-check-interval must be positive and shorter than --self-managed-tls-renew-before, "
            "or a pair could expire between two checks"
        )
    return SelfManagedTLS(namespace, secret, webhook, hosts, lifetime, renew_before, interval)


def compose_settings(values: dict[str, Any], settings: s.Settings, notes: list[str]) -> tuple[s.Settings, bool]:
    """--compose-role-arn, --aws-account-id, --aws-partition: the settings that compose role ARNs, and
    whether ``serve`` still has to ask IMDS for the account (no --aws-account-id)."""
    account, partition = values["aws_account_id"], values["aws_partition"]
    if account and not arn.ACCOUNT_RE.fullmatch(account):
        raise FlagError(f"--aws-account-id must be 12 digits, got {account!r}")
    if partition and not arn.PARTITION_RE.fullmatch(partition):
        raise FlagError(f"--aws-partition must look like aws, aws-cn or aws-us-gov, got {partition!r}")
    if not values["compose_role_arn"]:
        if account or partition:
            notes.append("--aws-account-id and --aws-partition only take effect with --compose-role-arn: ignored")
        return settings, False
    if not account:
        return settings, True
    partition = partition or arn.partition_for_region(settings.aws_default_region)
    return dataclasses.replace(settings, role_arn_account=account, role_arn_partition=partition), False


# klog's value syntax, so that a value klog (and so upstream) refuses at startup is refused here too.
_KLOG_SEVERITIES = frozenset({"INFO", "WARNING", "ERROR", "FATAL"})
_KLOG_TRACE_RE = re.compile(r"[^:]*\.[^:]*:\+?0*[1-9][0-9]*")  # file.go:N, N > 0


def accepted_only_notes(values: dict[str, Any]) -> list[str]:
    """One log line per upstream flag that is accepted but has no effect here, when it is set; FlagError
    for a value upstream itself would refuse."""
    threshold = values["stderrthreshold"]
    if threshold.upper() not in _KLOG_SEVERITIES and parse_go_int(threshold) is None:
        raise FlagError(f"--stderrthreshold must be INFO, WARNING, ERROR, FATAL or a number, got {threshold!r}")
    if values["log_backtrace_at"] and not _KLOG_TRACE_RE.fullmatch(values["log_backtrace_at"]):
        raise FlagError(f"--log_backtrace_at must be file.go:N, got {values['log_backtrace_at']!r}")
    for part in values["vmodule"].split(","):
        pattern, equals, level = part.partition("=")
        number = parse_go_int(level)
        if part and not (pattern and equals and number is not None and number >= 0):
            raise FlagError(f"--vmodule must be pattern=N[,pattern=N...], got {values['vmodule']!r}")
    if values["log_file_max_size"] < 0:
        raise FlagError("--log_file_max_size must not be negative")
    notes = []
    if not values["logtostderr"]:
        notes.append("--logtostderr=false: ignored; logs are always JSON lines on stderr")
    for name, _kind, default in KLOG_LAYOUT_FLAGS:
        value = values[name]
        if value != default and name != "alsologtostderr":  # alsologtostderr: stderr is where logs go
            notes.append(f"--{name}={str(value).lower() if isinstance(value, bool) else value}: {KLOG_IGNORED}")
    if values["tls_secret"] != UPSTREAM_TLS_SECRET:
        notes.append("--tls-secret is used only by --in-cluster=true, which is refused: ignored")
    return notes

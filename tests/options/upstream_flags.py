"""Every flag on the upstream webhook's command line and what ``irsa-webhook serve`` does with it.

The one list: ``test_options_upstream.py`` runs every row, and the README's flag table is written from it.
Upstream's command line is its ``main.go`` (pflag) plus every flag ``klog.InitFlags`` registers, which
its ``main.go`` adds to the same command line. Each flag is

* ``HONOURED``: it does what it does upstream (a value upstream itself corrects may be corrected the
  same way, with a log line);
* ``IGNORED``: accepted and without effect here, with a log line when set (klog's output layout: logs
  here are always JSON lines on stderr); a value klog would refuse is refused;
* and a row's ``refused`` value, when it has one, is one upstream accepts but whose meaning is unsafe
  here: ``serve`` exits 2 with one line that says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HONOURED = "honoured"
IGNORED = "ignored"


@dataclass(frozen=True)
class UpstreamFlag:
    name: str
    kind: str  # as upstream's --help prints it: bool, int, int64, string, duration, Level, ...
    default: str  # upstream's default, as its --help prints it ("" for none)
    origin: str  # "main.go" or "klog"
    treatment: str  # HONOURED or IGNORED
    example: str  # a value upstream accepts, given as --name=example ("" for a bare boolean --name)
    expected: Any  # what that value resolves to here
    refused: tuple[str, str] | None = None  # (a value upstream accepts, words of the one-line refusal)
    meaning: str = ""  # what it does here, for the README

    @property
    def argv(self) -> list[str]:
        return [f"--{self.name}" if self.example == "" else f"--{self.name}={self.example}"]

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


F = UpstreamFlag
MAIN_GO: tuple[UpstreamFlag, ...] = (
    F("port", "int", "443", "main.go", HONOURED, "8443", 8443, meaning="HTTPS port of /mutate"),
    F("metrics-port", "int", "9999", "main.go", HONOURED, "9090", 9090, meaning="plain-HTTP port of /metrics"),
    F("kubeconfig", "string", "", "main.go", HONOURED, "/etc/kubernetes/admin.conf", "/etc/kubernetes/admin.conf"),
    F("kube-api", "string", "", "main.go", HONOURED, "https://10.0.0.1:6443", "https://10.0.0.1:6443"),
    F("tls-cert", "string", "/etc/webhook/certs/tls.crt", "main.go", HONOURED, "/certs/tls.crt", "/certs/tls.crt"),
    F("tls-key", "string", "/etc/webhook/certs/tls.key", "main.go", HONOURED, "/certs/tls.key", "/certs/tls.key"),
    F(
        "in-cluster",
        "bool",
        "true",
        "main.go",
        HONOURED,
        "false",
        False,
        refused=("true", "--in-cluster=true is not supported"),
        meaning="false: certificates from --tls-cert/--tls-key; true (CSR mode, broken on certificates/v1) refused",
    ),
    F(
        "service-name",
        "string",
        "pod-identity-webhook",
        "main.go",
        HONOURED,
        "pod-identity-webhook",
        "pod-identity-webhook",
    ),
    F("namespace", "string", "eks", "main.go", HONOURED, "kube-system", "kube-system"),
    F(
        "tls-secret",
        "string",
        "pod-identity-webhook",
        "main.go",
        IGNORED,
        "webhook-tls",
        "webhook-tls",
        meaning="used upstream only by --in-cluster=true, which is refused",
    ),
    F("annotation-prefix", "string", "eks.amazonaws.com", "main.go", HONOURED, "example.com", "example.com"),
    F("token-audience", "string", "sts.amazonaws.com", "main.go", HONOURED, "example.com", "example.com"),
    F(
        "token-mount-path",
        "string",
        "/var/run/secrets/eks.amazonaws.com/serviceaccount",
        "main.go",
        HONOURED,
        "/var/run/secrets/aws",
        "/var/run/secrets/aws",
    ),
    F(
        "token-expiration",
        "int64",
        "86400",
        "main.go",
        HONOURED,
        "3600",
        3600,
        refused=("5000000000", "above 2^32 seconds"),
        meaning="below 600 raised to 600 with a log line (as upstream); above 2^32 refused (kube-apiserver rejects it)",
    ),
    F("aws-default-region", "string", "", "main.go", HONOURED, "eu-west-1", "eu-west-1"),
    F("sts-regional-endpoint", "bool", "false", "main.go", HONOURED, "", True),
    F("watch-config-map", "bool", "false", "main.go", HONOURED, "", True),
    F("compose-role-arn", "bool", "false", "main.go", HONOURED, "", True),
    F(
        "watch-container-credentials-config",
        "string",
        "",
        "main.go",
        HONOURED,
        "/etc/pod-identity/config.json",
        "/etc/pod-identity/config.json",
    ),
    F(
        "container-credentials-audience",
        "string",
        "pods.eks.amazonaws.com",
        "main.go",
        HONOURED,
        "example.com",
        "example.com",
    ),
    F(
        "container-credentials-token-mount-path",
        "string",
        "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount",
        "main.go",
        HONOURED,
        "/var/run/secrets/pods",
        "/var/run/secrets/pods",
    ),
    F(
        "container-credentials-token-volume-name",
        "string",
        "eks-pod-identity-token",
        "main.go",
        HONOURED,
        "pod-token",
        "pod-token",
    ),
    F("container-credentials-token-path", "string", "eks-pod-identity-token", "main.go", HONOURED, "token", "token"),
    F(
        "container-credentials-full-uri",
        "string",
        "http://169.254.170.23/v1/credentials",
        "main.go",
        HONOURED,
        "http://[fd00:ec2::23]/v1/credentials",
        "http://[fd00:ec2::23]/v1/credentials",
    ),
    F("version", "bool", "false", "main.go", HONOURED, "", "true", meaning="prints the version and exits 0"),
    F("enable-debugging-handlers", "bool", "false", "main.go", HONOURED, "", True),
    F("service-account-lookup-grace-period", "duration", "100ms", "main.go", HONOURED, "250ms", 0.25),
    # Later releases' TLS and informer flags.
    F(
        "tls-min-version",
        "string",
        "",
        "main.go",
        HONOURED,
        "VersionTLS13",
        "VersionTLS13",
        meaning="1.0 and 1.1 raised to 1.2 with a log line",
    ),
    F(
        "tls-cipher-suites",
        "string",
        "",
        "main.go",
        HONOURED,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    F("resync-period", "duration", "", "main.go", HONOURED, "1m", 60.0),
)

KLOG: tuple[UpstreamFlag, ...] = (
    F("v", "Level", "0", "klog", HONOURED, "4", 4, meaning="4 and above log at debug (also -v 4, -v=4)"),
    F(
        "logtostderr",
        "bool",
        "true",
        "klog",
        HONOURED,
        "",
        True,
        meaning="logs always go to stderr; --logtostderr=false is ignored with a log line",
    ),
    F("alsologtostderr", "bool", "false", "klog", HONOURED, "", True, meaning="logs always go to stderr"),
    F("add_dir_header", "bool", "false", "klog", IGNORED, "", True),
    F("log_backtrace_at", "traceLocation", ":0", "klog", IGNORED, "handler.go:120", "handler.go:120"),
    F("log_dir", "string", "", "klog", IGNORED, "/var/log/webhook", "/var/log/webhook"),
    F("log_file", "string", "", "klog", IGNORED, "/var/log/webhook.log", "/var/log/webhook.log"),
    F("log_file_max_size", "uint", "1800", "klog", IGNORED, "100", 100),
    F("one_output", "bool", "false", "klog", IGNORED, "", True),
    F("skip_headers", "bool", "false", "klog", IGNORED, "", True),
    F("skip_log_headers", "bool", "false", "klog", IGNORED, "", True),
    F("stderrthreshold", "severity", "2", "klog", IGNORED, "INFO", "INFO"),
    F("vmodule", "moduleSpec", "", "klog", IGNORED, "handler=4,cache=5", "handler=4,cache=5"),
    # Newer klog releases only.
    F("legacy_stderr_threshold_behavior", "bool", "true", "klog", IGNORED, "false", False),
)

ALL: tuple[UpstreamFlag, ...] = MAIN_GO + KLOG

PENDING_OTHER_WORK: frozenset[str] = frozenset()
"""Rows whose flag another piece of work is still landing: they are expected to fail (strictly) until
it has, and then this set should lose them. Empty: every upstream flag is in place."""

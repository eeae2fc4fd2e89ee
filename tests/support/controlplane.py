"""A real Kubernetes control plane for tests: etcd + kube-apiserver on 127.0.0.1, nothing else.

Like controller-runtime's envtest: no scheduler, kubelet or controller-manager, so pods are stored but
never run, and namespaces are never finalized. That is all an admission webhook test needs: the
API server calls the webhook, applies its patch, validates and stores the pod, and issues tokens.

Binaries come from ``KUBEBUILDER_ASSETS`` (a folder holding kube-apiserver, etcd and kubectl), else
from ``.cache/envtest/bin`` where ``make envtest`` puts them.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .certs import service_account_keys, serving_pki
from .paths import REPO
from .ports import free_port
from .procs import ManagedProcess, http_status
from .waits import wait_for

DEFAULT_ASSETS = REPO / ".cache" / "envtest" / "bin"
BINARIES = ("kube-apiserver", "etcd", "kubectl")

# The audience AWS STS expects in a web identity token (the client ID of an IAM OIDC provider).
STS_AUDIENCE = "sts.amazonaws.com"

# Bounds of the start-up waits. etcd is up in about a second; kube-apiserver needs 5-20 s on 2 cores
# (it installs its built-in RBAC roles and priority levels before /readyz passes).
ETCD_START_TIMEOUT = 30.0
APISERVER_START_TIMEOUT = 120.0
KUBECTL_TIMEOUT = 60.0


class MissingBinaries(RuntimeError):
    """kube-apiserver, etcd or kubectl is not where the suite looks; the message says how to fix it."""


def assets_folder() -> Path:
    """Where the binaries are looked for: KUBEBUILDER_ASSETS, else .cache/envtest/bin."""
    configured = os.environ.get("KUBEBUILDER_ASSETS")
    return Path(configured) if configured else DEFAULT_ASSETS


def find_binaries() -> Path:
    """The folder holding the three binaries, or MissingBinaries with a one-line remedy."""
    configured = os.environ.get("KUBEBUILDER_ASSETS")
    folder = assets_folder()
    missing = [name for name in BINARIES if not os.access(folder / name, os.X_OK)]
    if missing:
        source = "KUBEBUILDER_ASSETS" if configured else "the default"
        raise MissingBinaries(
            f"e2e: {', '.join(missing)} not found in {folder} ({source}): run `make envtest` "
            "(builds them once with Go, ~10-15 min) or set KUBEBUILDER_ASSETS=<folder holding "
            "kube-apiserver, etcd and kubectl>"
        )
    return folder


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver. Attribute names are relied on by other test modules."""

    workdir: Path
    assets: Path
    server: str = ""  # https://127.0.0.1:PORT
    kubeconfig: Path = field(default_factory=Path)  # admin kubeconfig (bearer token, CA file)
    ca_file: Path = field(default_factory=Path)  # CA of the API server's serving certificate
    token: str = ""  # admin bearer token (group system:masters)
    issuer: str = ""  # --service-account-issuer
    sa_public_key: Path = field(default_factory=Path)  # --service-account-key-file
    sa_private_key: Path = field(default_factory=Path)  # --service-account-signing-key-file
    etcd: ManagedProcess | None = None
    apiserver: ManagedProcess | None = None
    # --service-account-issuer when it is not the API server's own URL (an S3-hosted issuer).
    external_issuer: str = ""
    # Extra kube-apiserver flags, e.g. ["--etcd-compaction-interval=2s"]; later flags win.
    apiserver_args: list[str] = field(default_factory=list)
    # Where kube-apiserver listens and advertises itself: a real node's pods reach it through the
    # kubernetes Service, so there it is the node bridge's address (tests/support/node).
    address: str = "127.0.0.1"
    # The addresses its serving certificate names (the kubernetes Service's ClusterIP for a node).
    serving_ips: tuple[str, ...] = ()
    # envtest mode (no controller-manager): the ServiceAccount admission plugin is off, since no
    # namespace would get its "default" ServiceAccount. A real node runs kube-controller-manager.
    envtest: bool = True
    service_cidr: str = "10.0.0.0/24"
    # A list flag (repeating it adds modes): a node's control plane asks for "Node,RBAC" here.
    authorization_mode: str = "RBAC"
    # Days the serving certificate lasts (a `make cluster` kept running for a while asks for more).
    certificate_days: int = 1
    _apiserver_argv: list[str] = field(default_factory=list, init=False, repr=False)

    def start(self) -> ControlPlane:
        """Start etcd then kube-apiserver and wait until /readyz passes. Stops both on any failure."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        pki_dir = self.workdir / "pki"
        pki_dir.mkdir(parents=True, exist_ok=True)
        serving = serving_pki(pki_dir / "kube-apiserver", (self.address, *self.serving_ips), days=self.certificate_days)
        self.ca_file, serving_cert, serving_key = serving.ca, serving.cert, serving.key
        self.sa_private_key, self.sa_public_key = service_account_keys(pki_dir)
        self.token = secrets.token_urlsafe(32)
        tokens = pki_dir / "tokens.csv"
        # Static token file format: token,user,uid,"group1,group2". system:masters bypasses RBAC.
        tokens.write_text(f'{self.token},e2e-admin,e2e-admin,"system:masters"\n')
        tokens.chmod(0o600)

        etcd_client, etcd_peer = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_client}"
        self.etcd = ManagedProcess(
            "etcd",
            [
                str(self.assets / "etcd"),
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--name=default",
                # Test data is thrown away: skipping fsync makes every write ~10x cheaper.
                "--unsafe-no-fsync",
            ],
            self.workdir / "etcd.log",
        )
        etcd = self.etcd

        def etcd_healthy() -> bool:
            etcd.check_alive()
            return http_status(f"{etcd_url}/health") == 200

        wait_for(etcd_healthy, timeout=ETCD_START_TIMEOUT, what="etcd /health", on_timeout=etcd.tail)

        port = free_port()
        self.server = f"https://{self.address}:{port}"
        # The issuer is the API server's own URL, so /.well-known/openid-configuration points at a
        # jwks_uri that really serves the keys (as an EKS cluster's OIDC issuer does).
        self.issuer = self.external_issuer or self.server
        self._apiserver_argv = [
            str(self.assets / "kube-apiserver"),
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={serving_cert}",
            f"--tls-private-key-file={serving_key}",
            f"--etcd-servers={etcd_url}",
            f"--token-auth-file={tokens}",
            f"--authorization-mode={self.authorization_mode}",
            f"--service-account-issuer={self.issuer}",
            f"--service-account-key-file={self.sa_public_key}",
            f"--service-account-signing-key-file={self.sa_private_key}",
            f"--api-audiences={self.issuer},{STS_AUDIENCE}",
            f"--service-cluster-ip-range={self.service_cidr}",
            "--allow-privileged=true",
            # As envtest does: without a controller-manager no namespace gets a "default"
            # ServiceAccount, and this plugin would reject every pod whose SA does not exist,
            # which would hide what the webhook does with a missing ServiceAccount.
            *(["--disable-admission-plugins=ServiceAccount"] if self.envtest else []),
            *self.apiserver_args,
        ]
        self.start_apiserver()
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.kubeconfig.write_text(self._kubeconfig_text())
        self.kubeconfig.chmod(0o600)

    def _kubeconfig_text(self) -> str:
        # JSON is YAML: no need for a YAML writer here.
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "e2e",
                        "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                    }
                ],
                "users": [{"name": "e2e-admin", "user": {"token": self.token}}],
                "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e-admin"}}],
                "current-context": "e2e",
            },
            indent=2,
        )

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = KUBECTL_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane as the admin; raise KubectlError if check fails."""
        argv = [str(self.assets / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def dry_run_apply(self, objs: list[dict[str, Any]]) -> str:
        """``kubectl apply --dry-run=server --validate=strict`` of ``objs``; its output. A refusal, and any
        warning (a deprecated field, a Pod Security "warn" violation, ...), fails the test."""
        result = self.kubectl(
            "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=yaml.safe_dump_all(objs), check=False
        )
        assert result.returncode == 0, result.stderr
        assert "Warning" not in result.stderr, result.stderr
        return result.stdout

    def api_client_as(self, user: str | None) -> Any:
        """A kubernetes ApiClient of the admin, impersonating ``user`` (None: the admin itself; a
        ServiceAccount's user name gets its groups from the API server, as the real one would). No
        retries: a refusal is seen at once. The caller closes it."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.server
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.api_key = {"authorization": f"Bearer {self.token}"}
        configuration.retries = False
        api = client.ApiClient(configuration)
        if user:
            api.set_default_header("Impersonate-User", user)
        return api

    def logs(self) -> str:
        """The tails of the etcd and kube-apiserver logs, for failure reports."""
        return "\n".join(p.tail() for p in (self.etcd, self.apiserver) if p is not None)

    def start_apiserver(self) -> None:
        """Start kube-apiserver (again: same port, certificates, etcd and flags) and wait until /readyz passes."""
        if self.apiserver is not None and self.apiserver.alive():
            raise RuntimeError("kube-apiserver is already running")
        # Appends to the same log, so a restart's output follows the first run's.
        self.apiserver = ManagedProcess("kube-apiserver", self._apiserver_argv, self.workdir / "kube-apiserver.log")
        apiserver = self.apiserver
        context = ssl.create_default_context(cafile=str(self.ca_file))

        def apiserver_ready() -> bool:
            apiserver.check_alive()
            return http_status(f"{self.server}/readyz", context=context, token=self.token) == 200

        wait_for(
            apiserver_ready,
            timeout=APISERVER_START_TIMEOUT,
            what="kube-apiserver /readyz",
            interval=0.2,
            on_timeout=apiserver.tail,
        )

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver only (SIGTERM, bounded); etcd and its data stay."""
        if self.apiserver is not None:
            self.apiserver.stop()

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again on the same port, certificates and etcd."""
        self.stop_apiserver()
        self.start_apiserver()

    def reconfigure_apiserver(self, drop: tuple[str, ...] = (), add: tuple[str, ...] = ()) -> None:
        """Restart kube-apiserver without the flags starting with any of ``drop`` and with ``add`` appended
        (how an operator edits the static pod's flags: a key rotation, another issuer)."""
        self._apiserver_argv = [arg for arg in self._apiserver_argv if not arg.startswith(drop)] + list(add)
        self.restart_apiserver()

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd (by PID, bounded); safe to call more than once."""
        for process in (self.apiserver, self.etcd):
            if process is not None:
                process.stop()

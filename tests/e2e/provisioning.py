"""The provisioner's e2e stack, shared by the modules that prove it (issuer, roles): the AWS stand-ins
(public S3 front, call recorder, verifying STS) in front of moto, a kube-apiserver of its own whose
``--service-account-issuer`` is the S3 issuer URL, the webhook registered on it, and the helpers that
run ``provision``, make a role, get a pod's credentials and start the controller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support import kuberest as k
from tests.support.certs import Certs
from tests.support.controlplane import ControlPlane, find_binaries
from tests.support.moto import ACCESS_KEY_ID, ACCOUNT, SECRET_ACCESS_KEY, MotoServer
from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess
from tests.support.server import Server
from tests.support.standins import CallRecorder, PublicS3, VerifyingSTS, admin_client

from .chain import Injected, request_kubelet_token, sdk_environment, write_token

BUCKET = "irsa-e2e-issuer"
PREFIX = "cluster-e2e"
CLUSTER = "e2e-provisioner"
REGION = "us-east-1"
LABEL = {"irsa-e2e-provisioner": "on"}
CONFIGURATION = "irsa-e2e-provisioner"
CONTROLLER_NS, CONTROLLER_SA = "irsa-webhook-provisioner", "irsa-webhook-provisioner"
CRD = REPO / "manifests" / "components" / "provisioner" / "crd-irsaissuers.yaml"
POLICY = REPO / "examples" / "provisioner" / "provisioner-policy.json"
ISSUERS = "/apis/irsa-webhook.io/v1alpha1/irsaissuers"
SETTLE = 60.0


@dataclass
class Stack:
    """Everything this module runs: AWS stand-ins, its control plane, its webhook."""

    moto: MotoServer
    front: PublicS3
    recorder: CallRecorder
    sts: VerifyingSTS
    plane: ControlPlane
    kube: k.KubeRest
    workdir: Path

    @property
    def issuer(self) -> str:
        return self.front.issuer_url(BUCKET, PREFIX)

    def aws_env(self) -> dict[str, str]:
        """A laptop's environment: admin keys, AWS through the recorder, the front's CA trusted."""
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "AWS_ENDPOINT_URL": self.recorder.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(home / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "SSL_CERT_FILE": str(self.front.ca_file),
        }

    def s3(self) -> Any:
        return admin_client(self.moto.url, "s3")

    def iam(self) -> Any:
        return admin_client(self.moto.url, "iam")

    def served_kids(self) -> list[str]:
        """The kids an anonymous client reads at the issuer, as STS would."""
        request = urllib.request.Request(f"{self.issuer}/keys.json")
        with urllib.request.urlopen(request, context=self.front.client_context(), timeout=10) as response:
            return [key["kid"] for key in json.loads(response.read())["keys"]]


def issuer_object(issuer: str, deletion: str = "Retain") -> dict[str, Any]:
    return {
        "apiVersion": "irsa-webhook.io/v1alpha1",
        "kind": "IRSAIssuer",
        "metadata": {"name": "main"},
        "spec": {
            # the front is path-style on 127.0.0.1: the URL is given, the bucket is where it is stored
            "issuerURL": issuer,
            "discovery": {"s3": {"bucket": BUCKET, "region": REGION, "prefix": PREFIX, "createBucket": True}},
            "keys": {"source": "APIServer"},
            "oidcProvider": {"clientIDs": ["sts.amazonaws.com"]},
            "deletionPolicy": deletion,
        },
    }


@contextmanager
def running_stack(moto_server: MotoServer, workdir: Path) -> Iterator[Stack]:
    """The AWS stand-ins and a control plane whose issuer is the S3 issuer URL (moto reset first)."""
    moto_server.reset()
    front = PublicS3(moto_server.url, workdir / "front")
    recorder = CallRecorder(moto_server.url)
    sts = VerifyingSTS(moto_server.url, ca_file=front.ca_file, upstream=recorder.url)
    plane = ControlPlane(
        workdir=workdir / "plane", assets=find_binaries(), external_issuer=front.issuer_url(BUCKET, PREFIX)
    )
    try:
        plane.start()
        kube = k.KubeRest(plane.server, plane.token, plane.ca_file)
        try:
            for ns in ("irsa-probe", CONTROLLER_NS):
                kube.create_namespace(ns, LABEL)
            kube.create_service_account("irsa-probe", "probe")
            yield Stack(moto_server, front, recorder, sts, plane, kube, workdir)
        finally:
            kube.close()
    finally:
        plane.stop()
        for standin in (sts, recorder, front):
            standin.stop()


@contextmanager
def running_webhook(stack: Stack, workdir: Path, webhook_certs: Certs) -> Iterator[Server]:
    """``irsa-webhook serve`` on the stack's control plane, registered for namespaces with LABEL."""
    server = Server(
        workdir,
        webhook_certs,
        "--aws-default-region",
        REGION,
        kubeconfig=stack.plane.kubeconfig,
        bind_address=None,
    ).start()
    try:
        k.register_webhook(stack.kube, CONFIGURATION, server.mutate_url, webhook_certs.ca_pem, "Fail", LABEL)
        yield server
    finally:
        server.stop()


def provision(
    stack: Stack, verb: str, *objs: dict[str, Any], extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``irsa-webhook provision VERB -f <objs as one file>`` as a laptop runs it (admin keys, the recorder)."""
    manifest = stack.workdir / "objects.yaml"
    manifest.write_text(yaml.safe_dump_all(list(objs)))
    argv = [sys.executable, "-m", "webhook", "provision", verb, "-f", str(manifest), "--cluster-name", CLUSTER]
    argv += ["--kubeconfig", str(stack.plane.kubeconfig), "--probe-service-account", "irsa-probe/probe", *extra]
    return subprocess.run(argv, env=stack.aws_env(), capture_output=True, text=True, timeout=120, check=False, cwd=REPO)


def create_role(stack: Stack, name: str, namespace: str, service_account: str, policy: str | None = None) -> str:
    """A role trusted by one ServiceAccount through the issuer, its trust policy from our own command."""
    trust = subprocess.run(
        [sys.executable, "-m", "webhook", "trust-policy", "--issuer", stack.issuer, "--account-id", ACCOUNT,
         "--service-account", f"{namespace}:{service_account}"],
        capture_output=True, text=True, timeout=60, check=True, cwd=REPO,
    ).stdout  # fmt: skip
    iam = stack.iam()
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    if policy is not None:
        iam.put_role_policy(RoleName=name, PolicyName="provisioner", PolicyDocument=policy)
    return arn


def credentials_through_a_pod(
    stack: Stack, namespace: str, name: str, root: Path, service_account: str = "app"
) -> tuple[dict[str, str], str]:
    """Create a pod of ``service_account``; the webhook mutates it; the kubelet's token for it is
    written where the pod says; the SDK environment it gives and the token's kid."""
    stack.kube.create_pod(namespace, k.pod(name, service_account))
    pod = stack.kube.get_pod(namespace, name)
    injected = Injected.from_pod(pod, "app")
    token = request_kubelet_token(stack.kube, pod, injected)
    write_token(root, injected, token)
    return sdk_environment(root, injected, stack.sts.url), _kid(token)


def _kid(token: str) -> str:
    import jwt

    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


@dataclass
class Controller:
    process: ManagedProcess
    health: int


def start_controller(stack: Stack, env: dict[str, str], *extra: str) -> Controller:
    health = free_port()
    argv = [
        sys.executable, "-m", "webhook", "controller", "--cluster-name", CLUSTER,
        "--kubeconfig", str(stack.plane.kubeconfig), "--resync", "2s", "--no-leader-elect",
        "--probe-service-account", f"{CONTROLLER_NS}/{CONTROLLER_SA}",
        "--health-port", str(health), "--metrics-port", "0", "--bind-address", "127.0.0.1", *extra,
    ]  # fmt: skip
    process = ManagedProcess("irsa-webhook-controller", argv, stack.workdir / "controller.log", env=env, cwd=REPO)
    return Controller(process, health)


def issuer_status(stack: Stack) -> dict[str, Any]:
    status: dict[str, Any] = stack.kube.get(f"{ISSUERS}/main").get("status", {})
    return status


def condition(status: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in status.get("conditions", []) if c["type"] == kind), None)

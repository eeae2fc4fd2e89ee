"""A local cluster to try irsa-webhook end to end: ``python -m tests.cluster up|down|status``
(``make cluster``, ``make cluster-down``; docs/local-cluster.md).

``up`` (as root) starts the single-node cluster of :mod:`tests.support.node` in .cache/cluster, then,
each as a process of its own that outlives ``up``: moto (IAM and STS) and the verifying STS on the
node's bridge, where pods reach it. It installs the webhook with the chart (the node's app image,
which has this project installed, pulled never), and the provisioner (``irsa-webhook provision
apply``) makes the AWS side from two objects: an IRSAIssuer for the cluster's own issuer
(kube-apiserver, which serves the discovery document and JWKS itself) and an IRSARole for the demo
ServiceAccount. Then it runs a pod that asks STS who it is, prints the answer and the command that
did it, and leaves everything running. ``down`` stops all of it by PID and sweeps; ``status`` says
whether one runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.deploy import helm as chart
from tests.support.moto import ACCOUNT, REGION, MotoServer, aws_environment
from tests.support.node import cluster as node
from tests.support.node.network import NODE_ADDRESS
from tests.support.paths import REPO
from tests.support.procs import ManagedProcess
from tests.support.waits import wait_for

WORK = REPO / ".cache" / "cluster"
DAYS = 30  # a cluster kept for trying things out: its certificates outlast a month of that
CLUSTER_NAME = "irsa-local"
WEBHOOK_NAMESPACE = "irsa-webhook"
DEMO_NAMESPACE = "irsa-demo"
DEMO_SERVICE_ACCOUNT = "demo"
DEMO_ROLE = "irsa-demo"
ISSUER_NAME = "local"  # the IRSAIssuer of the cluster's own issuer
STS_AUDIENCE = "sts.amazonaws.com"
INFO_FILE = "cluster.json"  # in WORK: what `status` prints about a running cluster
STANDIN_TIMEOUT = 60.0
ROLLOUT_TIMEOUT = "180s"
DEMO_TIMEOUT = 180.0


# --- the webhook through the chart -------------------------------------------------------------------
def chart_values(failure_policy: str = "Ignore", replicas: int = 2) -> list[str]:
    """The chart's values for a local node: the app image (imported, so never pulled) and the
    webhook's self-managed serving certificate (no cert-manager here)."""
    return [
        *("--set", "image.registry=localhost", "--set", "image.repository=irsa-app", "--set", "image.tag=dev"),
        *("--set", "image.pullPolicy=Never"),
        *("--set", "pki.certManager.enabled=false"),
        *("--set", f"mutatingWebhook.failurePolicy={failure_policy}"),
        *("--set", f"replicaCount={replicas}"),
    ]


def install_webhook(kubeconfig: Path, *values: str, namespace: str = WEBHOOK_NAMESPACE) -> None:
    """``helm install --wait`` of the chart into ``namespace`` (created, restricted Pod Security level,
    as docs/deploy.md asks), then wait until kube-apiserver trusts it: the self-managed certificate
    reaches the caBundle a moment after the pods are Ready."""
    helm = chart.find_helm()
    kubectl(kubeconfig, "create", "namespace", namespace)
    kubectl(kubeconfig, "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    chart.run(
        helm,
        "install",
        chart.RELEASE,
        str(chart.CHART),
        "--namespace",
        namespace,
        "--kubeconfig",
        str(kubeconfig),
        "--wait",
        "--timeout",
        ROLLOUT_TIMEOUT,
        *chart_values(),
        *values,
        timeout=300,
    )

    def trusted() -> bool:
        config = json.loads(kubectl(kubeconfig, "get", "mutatingwebhookconfiguration", "-o", "json").stdout)
        hooks = [h for item in config["items"] for h in item.get("webhooks", [])]
        return bool(hooks) and all(h.get("clientConfig", {}).get("caBundle") for h in hooks)

    wait_for(trusted, timeout=60.0, what="the webhook's caBundle", interval=0.5)


# --- kubectl -----------------------------------------------------------------------------------------
def kubectl_binary() -> Path:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    folder = Path(assets) if assets else REPO / ".cache" / "envtest" / "bin"
    return folder / "kubectl"


def kubectl(
    kubeconfig: Path, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    argv = [str(kubectl_binary()), f"--kubeconfig={kubeconfig}", *args]
    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


# --- the AWS side ------------------------------------------------------------------------------------
def start_sts(cluster: node.LocalCluster, moto_url: str) -> str:
    """The verifying STS as its own process on the node's bridge; its URL."""
    url_file = cluster.work / "sts.url"
    url_file.unlink(missing_ok=True)
    assert cluster.control_plane is not None
    process = ManagedProcess(
        "verifying-sts",
        [
            sys.executable,
            "-m",
            "tests.support.node.stsprocess",
            *("--moto", moto_url, "--host", NODE_ADDRESS, "--url-file", str(url_file)),
            *("--ca-file", str(cluster.control_plane.ca_file)),
        ],
        cluster.work / "verifying-sts.log",
        cwd=REPO,
    )
    cluster.add_process(process)

    def listening() -> bool:
        process.check_alive()
        return url_file.is_file()

    wait_for(listening, timeout=STANDIN_TIMEOUT, what="the verifying STS", on_timeout=process.tail)
    return url_file.read_text().strip()


def provision_objects(issuer_url: str) -> list[dict[str, Any]]:
    """What the provisioner makes the demo's AWS side from: an IRSAIssuer for the cluster's own issuer
    (served by kube-apiserver, so nothing to publish: only the IAM OIDC provider is ensured, as
    ``eksctl utils associate-iam-oidc-provider`` does), and an IRSARole trusting it for the demo
    ServiceAccount (created by it, annotated with the role)."""
    return [
        {
            "apiVersion": "irsa-webhook.io/v1alpha1",
            "kind": "IRSAIssuer",
            "metadata": {"name": ISSUER_NAME},
            "spec": {"issuerURL": issuer_url, "oidcProvider": {"clientIDs": [STS_AUDIENCE]}},
        },
        {
            "apiVersion": "irsa-webhook.io/v1alpha1",
            "kind": "IRSARole",
            "metadata": {"name": DEMO_SERVICE_ACCOUNT, "namespace": DEMO_NAMESPACE},
            "spec": {
                "issuerRef": ISSUER_NAME,
                "serviceAccounts": [{"name": DEMO_SERVICE_ACCOUNT, "create": True}],
                "roleName": DEMO_ROLE,
            },
        },
    ]


def provision(cluster: node.LocalCluster, moto_url: str) -> None:
    assert cluster.control_plane is not None
    objects = cluster.work / "irsa-objects.yaml"
    objects.write_text(yaml.safe_dump_all(provision_objects(cluster.control_plane.issuer)))
    home = cluster.work / "aws-home"
    home.mkdir(exist_ok=True)
    # The provisioner checks that the issuer serves its documents, as STS will fetch them: over HTTPS
    # trusted through the cluster's own CA here (an EKS issuer's is public).
    env = {**os.environ, **aws_environment(moto_url, home), "SSL_CERT_FILE": str(cluster.control_plane.ca_file)}
    argv = [
        str(Path(sys.executable).with_name("irsa-webhook")),
        *("provision", "apply", "-f", str(objects), "--cluster-name", CLUSTER_NAME),
        *("--kubeconfig", str(cluster.kubeconfig)),
    ]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"irsa-webhook provision apply failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


def wait_injected(kubeconfig: Path) -> None:
    """Until kube-apiserver calls the webhook for the demo's pods: a server-side dry run of a pod of
    the demo ServiceAccount comes back with AWS_ROLE_ARN. With failurePolicy Ignore, a pod created
    before kube-apiserver has picked up the configuration (and its caBundle) is admitted without
    credentials, which is what the demo would then show."""
    manifest = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "probe", "namespace": DEMO_NAMESPACE},
            "spec": {
                "serviceAccountName": DEMO_SERVICE_ACCOUNT,
                "containers": [{"name": "probe", "image": "localhost/irsa-app:dev"}],
            },
        }
    )

    def injected() -> bool:
        result = kubectl(kubeconfig, "create", "--dry-run=server", "-o", "json", "-f", "-", input=manifest, check=False)
        if result.returncode != 0:
            return False
        env = json.loads(result.stdout)["spec"]["containers"][0].get("env") or []
        return any(e.get("name") == "AWS_ROLE_ARN" for e in env)

    wait_for(
        injected,
        timeout=60.0,
        what="the webhook to inject the demo ServiceAccount's pods",
        interval=0.5,
        on_timeout=lambda: (
            kubectl(
                kubeconfig,
                "get",
                "serviceaccount",
                DEMO_SERVICE_ACCOUNT,
                "-n",
                DEMO_NAMESPACE,
                "-o",
                "yaml",
                check=False,
            ).stdout
        ),
    )


# --- the demo pod ------------------------------------------------------------------------------------
def demo_command(sts_url: str, kubectl_name: str = "kubectl") -> list[str]:
    """One `kubectl run` whose pod obtains credentials through the webhook and asks STS who it is.
    The endpoint and region are in the pod's env, where a user sees them: the AWS CLI would
    otherwise ask the real STS."""
    overrides = {"apiVersion": "v1", "spec": {"serviceAccountName": DEMO_SERVICE_ACCOUNT}}
    return [
        kubectl_name,
        *("run", "demo", "-n", DEMO_NAMESPACE, "--rm", "-i", "--restart=Never", "--quiet"),
        *("--image=localhost/irsa-app:dev", "--image-pull-policy=Never"),
        f"--overrides={json.dumps(overrides, separators=(',', ':'))}",
        f"--env=AWS_ENDPOINT_URL_STS={sts_url}",
        f"--env=AWS_DEFAULT_REGION={REGION}",
        *("--command", "--", "aws", "sts", "get-caller-identity", "--output", "json"),
    ]


def run_demo(kubeconfig: Path, command: Sequence[str]) -> dict[str, Any]:
    """Run the demo's command once (as the user would) and return STS's answer."""
    argv = [str(kubectl_binary()), f"--kubeconfig={kubeconfig}", *command[1:]]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=DEMO_TIMEOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the demo pod failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    start = result.stdout.find("{")
    answer: dict[str, Any] = json.loads(result.stdout[start:])
    return answer


# --- up, down, status --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Started:
    kubeconfig: Path
    sts_url: str
    command: list[str]
    arn: str
    seconds: float


def up(work: Path = WORK) -> Started:
    """Start everything and leave it running (module docstring); stops what it started on failure."""
    began = time.monotonic()
    # A cluster that died without its clean-up is swept first: its mounts live under ``work``, and
    # removing the folder through a live mount would reach into what is mounted there.
    left = node.down() if node.read_state() is not None else []
    if left:
        raise node.NodeUnavailable(f"node: a stopped cluster left {left}: remove them, then try again")
    if work.exists():
        shutil.rmtree(work)  # a stopped cluster's files: nothing in them is worth keeping
    cluster = node.LocalCluster(work, node.NodeAssets.find(), days=DAYS)
    cluster.start()
    try:
        assert cluster.control_plane is not None
        kubeconfig = cluster.kubeconfig
        # STS fetches the issuer's discovery document and JWKS without credentials, as AWS does.
        kubectl(
            kubeconfig,
            *("create", "clusterrolebinding", "irsa-oidc-discovery-anonymous"),
            "--clusterrole=system:service-account-issuer-discovery",
            "--group=system:unauthenticated",
        )
        moto = MotoServer(work)
        cluster.add_process(moto.process)
        sts_url = start_sts(cluster, moto.url)
        kubectl(kubeconfig, "create", "namespace", DEMO_NAMESPACE)
        provision(cluster, moto.url)
        install_webhook(kubeconfig)
        wait_injected(kubeconfig)
        command = demo_command(sts_url)
        answer = run_demo(kubeconfig, command)
        (work / INFO_FILE).write_text(
            json.dumps(
                {"kubeconfig": str(kubeconfig), "sts": sts_url, "moto": moto.url, "command": shlex.join(command)},
                indent=2,
            )
            + "\n"
        )
    except BaseException:
        if cluster.control_plane is not None and cluster.control_plane.kubeconfig != Path():
            print(diagnose(cluster.kubeconfig), file=sys.stderr)
        left = cluster.stop()
        if left:
            print(f"left behind: {left}", file=sys.stderr)
        raise
    cluster.detach()
    return Started(kubeconfig, sts_url, command, str(answer["Arn"]), round(time.monotonic() - began, 1))


def diagnose(kubeconfig: Path) -> str:
    """What the cluster's objects say about a failed start (pods, their events, the webhook's logs)."""
    parts = []
    for args in (
        ("get", "pods", "-A", "-o", "wide"),
        ("describe", "pods", "-n", WEBHOOK_NAMESPACE),
        ("get", "events", "-A", "--sort-by=.lastTimestamp"),
        ("logs", "-n", WEBHOOK_NAMESPACE, "-l", "app.kubernetes.io/component=webhook", "--tail=30", "--prefix"),
    ):
        result = kubectl(kubeconfig, *args, check=False)
        parts.append(f"--- kubectl {' '.join(args)} ---\n{result.stdout}{result.stderr}")
    return "\n".join(parts)


def print_started(started: Started) -> None:
    folder = kubectl_binary().parent
    on_path = shutil.which("kubectl") is not None
    print(f"\nA local cluster runs (ready in {started.seconds} s). Its kubeconfig: {started.kubeconfig}\n")
    print(f"  export KUBECONFIG={started.kubeconfig}")
    if not on_path:
        print(f"  export PATH={folder}:$PATH    # the kubectl built with the cluster")
    role = f"arn:aws:iam::{ACCOUNT}:role/{DEMO_ROLE}"
    print(f"\nA pod of ServiceAccount {DEMO_NAMESPACE}/{DEMO_SERVICE_ACCOUNT} (role {role}) asks STS who it is:\n")
    print(f"  {shlex.join(started.command)}\n")
    print(f"It answered (the assumed role's ARN): {started.arn}\n")
    print("Stop it all with `make cluster-down` (python -m tests.cluster down).")


def status() -> int:
    state = node.running()
    if state is None:
        print("no local cluster runs on this machine")
        return 1
    work = Path(state["work"])
    print(f"a local cluster runs: work folder {work}, kube-apiserver {state.get('server')}")
    info = work / INFO_FILE
    if info.is_file():
        details = json.loads(info.read_text())
        print(f"  export KUBECONFIG={details['kubeconfig']}")
        print(f"  verifying STS: {details['sts']}, moto (IAM, STS): {details['moto']}")
        print(f"  {details['command']}")
    for entry in state.get("processes", ()):
        print(f"  {entry['name']}: pid {entry['pid']}")
    return 0


def down() -> int:
    if node.read_state() is None:
        print("no local cluster runs on this machine; nothing to stop")
        return 0
    left = node.down()
    if left:
        print("left behind (remove by hand):\n  " + "\n  ".join(left))
        return 1
    print("stopped; nothing left behind")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    args = parser.parse_args(argv)
    if args.action == "status":
        return status()
    if args.action == "down":
        return down()
    reason = node.unavailable()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    if node.running() is not None:
        print("a local cluster runs already on this machine (`python -m tests.cluster status`)", file=sys.stderr)
        return 1
    print_started(up())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

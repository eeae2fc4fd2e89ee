"""The region, as the AWS SDK in a real container reads it.

boto3 reads ``AWS_DEFAULT_REGION`` and not ``AWS_REGION`` (which other SDKs read). A pod whose
manifest sets only ``AWS_REGION`` used to get credentials and then fail every regional client with
NoRegionError, and the rule inherited from upstream (either variable present suppresses both) kept
``--aws-default-region`` from helping. Now the webhook adds the missing one with the same value; a
container with no region at all, and none configured, still has none (docs/behaviour.md says how to
configure one)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support import kuberest as k
from tests.support.node.aws import NodeAWS
from tests.support.node.cluster import LocalCluster
from tests.support.node.pods import pod, probe_container, run_probe_pod
from tests.support.server import Server

from .shared import NamespaceFactory

pytestmark = pytest.mark.node

LABELS = {"irsa-node.test/region": "yes"}


def test_a_container_setting_only_aws_region_gets_a_region_boto3_reads(
    local_cluster: LocalCluster,
    kube: k.KubeRest,
    make_namespace: NamespaceFactory,
    node_aws: NodeAWS,
    start_webhook: Callable[..., Server],
    pod_env: dict[str, str],
) -> None:
    namespace = make_namespace(labels=LABELS)
    role_arn = node_aws.create_role(f"node-region-{namespace}"[:64], namespace, "app")
    kube.create_service_account(namespace, "app", {k.ROLE_ANNOTATION: role_arn})
    webhook = start_webhook()  # no --aws-default-region: the pod's own region is all there is
    config = "irsa-node-region"
    k.register_webhook(kube, config, webhook.mutate_url, webhook.certs.ca_pem, "Fail", LABELS)
    env = {**pod_env, "PROBE_STS": "1", "PROBE_REGIONAL": "1"}
    try:
        _, seen = run_probe_pod(
            kube,
            local_cluster.plane,
            namespace,
            pod(
                "region",
                "app",
                [probe_container("regional", {**env, "AWS_REGION": "eu-west-1"}), probe_container("none", env)],
            ),
        )
    finally:
        kube.delete_webhook_configuration(config)
    regional = seen["regional"]
    assert regional["env"]["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert "error" not in regional, regional.get("error")
    assert regional["region"] == "eu-west-1"
    assert regional["regional_client"] == "created"
    assert regional["identity"]["Arn"].split("/")[1] == role_arn.split("/")[-1]
    # No region anywhere: the SDK has none, and says so (the documented failure, not ours to guess).
    assert seen["none"]["region"] is None
    assert "NoRegionError" in seen["none"]["error"]

"""``mutate`` says what it added (the token volume, and per container the variables), so that nobody
(the audit, the log) has to diff pod specs to find out."""

from __future__ import annotations

from typing import Any

from webhook.core.inject import Injected
from webhook.core.mutate import mutate
from webhook.core.pod import PodView, read_pod
from webhook.core.records import CONTAINER_CREDENTIALS, Identity
from webhook.core.settings import Settings

SETTINGS = Settings(aws_default_region="us-west-2")
IRSA = Identity("shop", "app", role_arn="arn:aws:iam::111122223333:role/app")


def view(pod: dict[str, Any], settings: Settings = SETTINGS) -> PodView:
    result = read_pod(pod, settings, "shop")
    assert isinstance(result, PodView)
    return result


def added(injected: list[Injected]) -> list[tuple[str, tuple[str, ...]]]:
    return [(each.container, each.variables) for each in injected]


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "annotations": {"eks.amazonaws.com/skip-containers": "skipped"}}, "spec": spec}


def test_a_fresh_pod_reports_the_volume_and_each_container() -> None:
    fresh = pod(
        initContainers=[{"name": "init"}],
        containers=[{"name": "app", "env": [{"name": "AWS_REGION", "value": "eu-west-1"}]}, {"name": "skipped"}, {}],
    )
    result = mutate(view(fresh), IRSA, SETTINGS)
    assert result.volume == "aws-iam-token"
    credentials = ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
    assert added(result.injected) == [
        ("init", ("AWS_DEFAULT_REGION", "AWS_REGION", *credentials)),
        ("app", ("AWS_DEFAULT_REGION", *credentials)),  # AWS_REGION present: only its partner is added
        ("#2", ("AWS_DEFAULT_REGION", "AWS_REGION", *credentials)),  # a nameless container, by position
    ]


def test_a_mutated_pod_reports_nothing_and_a_mount_alone_is_reported_without_variables() -> None:
    once = mutate(view(pod(containers=[{"name": "app"}])), IRSA, SETTINGS)
    again = mutate(view(once.pod), IRSA, SETTINGS)
    assert (again.volume, again.injected) == ("", [])
    # Variables set by hand, the mount missing: only the mount is added.
    env = [
        {"name": "AWS_ROLE_ARN", "value": "x"},
        {"name": "AWS_DEFAULT_REGION", "value": "us-east-1"},
        {"name": "AWS_REGION", "value": "us-east-1"},
    ]
    spec = once.pod["spec"]
    partial = {**once.pod, "spec": {**spec, "containers": [*spec["containers"], {"name": "manual", "env": env}]}}
    result = mutate(view(partial), IRSA, SETTINGS)
    assert result.volume == ""
    assert added(result.injected) == [("manual", ())]


def test_pod_identity_reports_its_own_volume_and_variables() -> None:
    identity = Identity("shop", "app", mode=CONTAINER_CREDENTIALS, source="pod-identity")
    result = mutate(view(pod(containers=[{"name": "app"}])), identity, SETTINGS, lambda low, high: high)
    assert result.volume == SETTINGS.container_credentials_volume_name
    assert added(result.injected) == [
        (
            "app",
            (
                "AWS_DEFAULT_REGION",
                "AWS_REGION",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            ),
        )
    ]

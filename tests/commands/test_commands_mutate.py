"""`irsa-webhook mutate` and `certs`, called in-process through main() (the flag layer they share:
tests/options/test_options_flags.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml
from cryptography import x509

from tests.support.paths import EXAMPLES
from webhook.cli import main

SA_DOCS = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: team-a, annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/a"}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: team-b, annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/b"}}
"""


def pod(ns: str | None = None, sa: str = "app", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p"}
    if ns:
        meta["namespace"] = ns
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"serviceAccountName": sa, "containers": [{"name": "c", "image": "i"}]},
    }


def write(tmp: Path, name: str, content: Any) -> Path:
    path = tmp / name
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def role_of(mutated: dict[str, Any]) -> str:
    env: dict[str, str] = {e["name"]: e["value"] for e in mutated["spec"]["containers"][0]["env"]}
    return env["AWS_ROLE_ARN"]


def test_example_pod_prints_the_mutated_pod(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["mutate", "--pod", str(EXAMPLES / "pod.yaml"), "--service-account", str(EXAMPLES / "service-accounts.yaml")]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    mutated = yaml.safe_load(out)
    assert role_of(mutated) == "arn:aws:iam::111122223333:role/s3-reader"
    assert mutated["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3600


@pytest.mark.parametrize(
    ("pod_ns", "flag_ns", "role"),
    [
        pytest.param("team-a", None, "arn:aws:iam::111122223333:role/a", id="pod-namespace"),
        pytest.param(None, "team-b", "arn:aws:iam::111122223333:role/b", id="namespace-flag"),
        pytest.param("team-a", "team-b", "arn:aws:iam::111122223333:role/a", id="pod-namespace-wins"),
    ],
)
def test_service_account_is_chosen_by_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pod_ns: str | None, flag_ns: str | None, role: str
) -> None:
    sas = write(tmp_path, "sas.yaml", SA_DOCS)
    args = [
        "mutate",
        "--pod",
        str(write(tmp_path, "pod.yaml", pod(pod_ns))),
        "--service-account",
        str(sas),
        "-o",
        "json",
    ]
    if flag_ns:
        args += ["--namespace", flag_ns]
    assert main(args) == 0
    assert role_of(json.loads(capsys.readouterr().out)) == role


def test_patch_output_applies_to_the_pod(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = pod("team-a")
    pod_file = write(tmp_path, "pod.yaml", source)
    sas = write(tmp_path, "sas.yaml", SA_DOCS)
    assert main(["mutate", "--pod", str(pod_file), "--service-account", str(sas), "--patch", "-o", "json"]) == 0
    patch = json.loads(capsys.readouterr().out)
    assert {op["op"] for op in patch} == {"add"}
    assert main(["mutate", "--pod", str(pod_file), "--service-account", str(sas), "-o", "json"]) == 0
    assert jsonpatch.apply_patch(source, patch) == json.loads(capsys.readouterr().out)


def test_warnings_go_to_stderr_one_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sas = write(tmp_path, "sas.yaml", SA_DOCS)
    bad = pod(
        "team-a", annotations={"eks.amazonaws.com/token-expiration": "60", "eks.amazonaws.com/skip-containers": "ghost"}
    )
    assert main(["mutate", "--pod", str(write(tmp_path, "pod.yaml", bad)), "--service-account", str(sas)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert all(line.startswith("warning: ") for line in err)
    assert "600" in err[0]
    assert "ghost" in err[1]


def test_missing_service_account_warns_and_prints_pod_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = pod("elsewhere")
    code = main(["mutate", "--pod", str(write(tmp_path, "pod.yaml", source)), "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 0
    assert json.loads(out) == source
    assert err.strip() == "warning: serviceaccount elsewhere/app not found; no AWS credentials injected"


def test_strict_denial_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sas = write(tmp_path, "sas.yaml", SA_DOCS.replace('"arn:aws:iam::111122223333:role/a"', "nope"))
    code = main(
        ["mutate", "--strict", "--pod", str(write(tmp_path, "pod.yaml", pod("team-a"))), "--service-account", str(sas)]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert "denied:" in err


@pytest.mark.parametrize(
    ("pod_text", "sa_text", "needle"),
    [
        pytest.param(None, SA_DOCS, "No such file", id="missing-pod-file"),
        pytest.param("kind: Pod\nspec: [oops\n", SA_DOCS, "while parsing", id="pod-not-yaml"),
        pytest.param("kind: Deployment\n", SA_DOCS, "expected kind Pod", id="not-a-pod"),
        pytest.param("a: 1\n---\nb: 2\n", SA_DOCS, "exactly one Pod", id="two-documents"),
        pytest.param("- 1\n", SA_DOCS, "exactly one Pod", id="a-list"),
        pytest.param("kind: Pod\n", "kind: [x\n", "while parsing", id="sa-not-yaml"),
    ],
)
def test_unreadable_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pod_text: str | None, sa_text: str, needle: str
) -> None:
    pod_path = tmp_path / "pod.yaml" if pod_text is None else write(tmp_path, "pod.yaml", pod_text)
    code = main(["mutate", "--pod", str(pod_path), "--service-account", str(write(tmp_path, "sa.yaml", sa_text))])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("irsa-webhook mutate: ")
    assert needle in err


def test_mutation_flags_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sas = write(tmp_path, "sas.yaml", SA_DOCS)
    args = [
        "mutate", "--pod", str(write(tmp_path, "pod.yaml", pod("team-a"))), "--service-account", str(sas), "-o", "json",
        "--aws-default-region=eu-central-1", "--sts-regional-endpoint",
        "--token-mount-path=/aws/", "--token-audience=custom",
    ]  # fmt: skip
    assert main(args) == 0
    mutated = json.loads(capsys.readouterr().out)
    env = {e["name"]: e["value"] for e in mutated["spec"]["containers"][0]["env"]}
    assert env["AWS_REGION"] == "eu-central-1"
    assert env["AWS_STS_REGIONAL_ENDPOINTS"] == "regional"
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == "/aws/token"
    assert mutated["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "custom"


def _env_entries(mutated: dict[str, Any], container: int = 0) -> dict[str, Any]:
    return {e["name"]: e for e in mutated["spec"]["containers"][container].get("env", [])}


def test_role_session_name_flag_injects_the_downward_api_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sas = write(tmp_path, "sas.yaml", SA_DOCS)
    pod_file = write(tmp_path, "pod.yaml", pod("team-a"))
    assert main(["mutate", "--pod", str(pod_file), "--service-account", str(sas), "--role-session-name=pod"]) == 0
    env = _env_entries(yaml.safe_load(capsys.readouterr().out))
    assert env["AWS_ROLE_SESSION_NAME"] == {
        "name": "AWS_ROLE_SESSION_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    # off by default
    assert main(["mutate", "--pod", str(pod_file), "--service-account", str(sas)]) == 0
    assert "AWS_ROLE_SESSION_NAME" not in _env_entries(yaml.safe_load(capsys.readouterr().out))


def test_role_session_name_flag_refuses_other_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sas = write(tmp_path, "sas.yaml", SA_DOCS)
    pod_file = write(tmp_path, "pod.yaml", pod("team-a"))
    assert main(["mutate", "--pod", str(pod_file), "--service-account", str(sas), "--role-session-name=name"]) == 2
    err = capsys.readouterr().err
    assert "--role-session-name must be 'pod' or empty" in err
    assert len(err.strip().splitlines()) == 1


def test_service_account_region_and_session_name_annotations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": "app",
            "namespace": "team-a",
            "annotations": {
                "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/a",
                "eks.amazonaws.com/region": "ap-northeast-3",
                "eks.amazonaws.com/role-session-name": "pod",
            },
        },
    }
    sas = write(tmp_path, "sa.yaml", sa)
    pod_file = write(tmp_path, "pod.yaml", pod("team-a"))
    args = ["mutate", "--pod", str(pod_file), "--service-account", str(sas), "--aws-default-region=us-east-1"]
    assert main(args) == 0
    env = _env_entries(yaml.safe_load(capsys.readouterr().out))
    assert env["AWS_REGION"]["value"] == env["AWS_DEFAULT_REGION"]["value"] == "ap-northeast-3"
    assert env["AWS_ROLE_SESSION_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_include_containers_annotation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sas = write(tmp_path, "sas.yaml", SA_DOCS)
    manifest = pod("team-a", annotations={"eks.amazonaws.com/include-containers": "aws"})
    manifest["spec"]["containers"].append({"name": "aws", "image": "aws-cli"})
    pod_file = write(tmp_path, "pod.yaml", manifest)
    assert main(["mutate", "--pod", str(pod_file), "--service-account", str(sas)]) == 0
    captured = capsys.readouterr()
    mutated = yaml.safe_load(captured.out)
    assert "env" not in mutated["spec"]["containers"][0]
    assert role_of({"spec": {"containers": [mutated["spec"]["containers"][1]]}}) == "arn:aws:iam::111122223333:role/a"
    assert captured.err == ""


@pytest.mark.parametrize(
    ("flag", "expected", "note"), [("300", 600, "below the minimum of 600 seconds: using 600"), ("3600", 3600, "")]
)
def test_token_expiration_flag_is_corrected_as_upstream_with_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, expected: int, note: str
) -> None:
    sas = write(tmp_path, "sas.yaml", SA_DOCS)
    pod_file = write(tmp_path, "pod.yaml", pod("team-a"))
    assert main(["mutate", "--pod", str(pod_file), "--service-account", str(sas), f"--token-expiration={flag}"]) == 0
    captured = capsys.readouterr()
    mutated = yaml.safe_load(captured.out)
    assert (
        mutated["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == expected
    )
    lines = [line for line in captured.err.splitlines() if line.startswith("irsa-webhook mutate: ")]
    assert len(lines) == (1 if note else 0)
    if note:
        assert note in lines[0]


def test_certs_writes_a_usable_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c"
    assert main(["certs", "--out", str(out), "--dns-name", "webhook.example", "--ip-address", "10.0.0.1"]) == 0
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "irsa-webhook.irsa-webhook.svc" in san.get_values_for_type(x509.DNSName)
    assert "webhook.example" in san.get_values_for_type(x509.DNSName)
    assert (out / "tls.key").stat().st_mode & 0o777 == 0o600
    ca_before = (out / "ca.crt").read_bytes()
    assert main(["certs", "--out", str(out)]) == 0  # re-run rotates the serving cert, keeps the CA
    assert (out / "ca.crt").read_bytes() == ca_before
    ca = x509.load_pem_x509_certificate(ca_before)
    x509.load_pem_x509_certificate((out / "tls.crt").read_bytes()).verify_directly_issued_by(ca)
    capsys.readouterr()
    assert main(["certs", "--out", str(out), "--ip-address", "nope"]) == 2


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().err


def test_pod_identity_file_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The Pod Identity file is the first source, as in serve: the listed pair gets container credentials."""
    sas = write(tmp_path, "sas.yaml", SA_DOCS)
    identities = tmp_path / "identities.json"
    identities.write_text(json.dumps({"identities": [{"namespace": "team-a", "serviceAccount": "app"}]}))
    pod_file = write(tmp_path, "pod.yaml", pod("team-a"))
    args = ["mutate", "--pod", str(pod_file), "--service-account", str(sas)]
    assert main([*args, f"--watch-container-credentials-config={identities}", "--token-expiration=3600"]) == 0
    mutated = yaml.safe_load(capsys.readouterr().out)
    env = _env_entries(mutated)
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"]["value"] == "http://169.254.170.23/v1/credentials"
    assert "AWS_ROLE_ARN" not in env
    assert mutated["metadata"]["labels"] == {"eks.amazonaws.com/pod-identity": "enabled"}
    # team-b is not listed: IRSA from its ServiceAccount
    other = ["mutate", "--pod", str(write(tmp_path, "b.yaml", pod("team-b"))), "--service-account", str(sas)]
    assert main([*other, f"--watch-container-credentials-config={identities}"]) == 0
    assert role_of(yaml.safe_load(capsys.readouterr().out)) == "arn:aws:iam::111122223333:role/b"


def test_broken_pod_identity_file_offline_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    identities = tmp_path / "identities.json"
    identities.write_text("{not json")
    pod_file = write(tmp_path, "pod.yaml", pod("team-a"))
    assert main(["mutate", "--pod", str(pod_file), f"--watch-container-credentials-config={identities}"]) == 2
    err = capsys.readouterr().err
    assert "--watch-container-credentials-config" in err
    assert "not valid JSON" in err


def test_config_map_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ServiceAccount without a role takes it from the ConfigMap manifest, as serve --watch-config-map."""
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "team-c"}}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "pod-identity-webhook", "namespace": "kube-system"},
        "data": {"config": json.dumps({"team-*/app": {"RoleARN": "arn:aws:iam::111122223333:role/mapped"}})},
    }
    args = [
        "mutate", "--pod", str(write(tmp_path, "pod.yaml", pod("team-c"))),
        "--service-account", str(write(tmp_path, "sa.yaml", sa)),
    ]  # fmt: skip
    assert main(args) == 0
    assert "env" not in yaml.safe_load(capsys.readouterr().out)["spec"]["containers"][0]
    assert main([*args, "--config-map", str(write(tmp_path, "cm.yaml", config_map))]) == 0
    assert role_of(yaml.safe_load(capsys.readouterr().out)) == "arn:aws:iam::111122223333:role/mapped"


def test_compose_role_arn_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "app", "namespace": "team-a", "annotations": {"eks.amazonaws.com/role-arn": "s3-reader"}},
    }
    args = [
        "mutate", "--pod", str(write(tmp_path, "pod.yaml", pod("team-a"))),
        "--service-account", str(write(tmp_path, "sa.yaml", sa)), "--compose-role-arn",
    ]  # fmt: skip
    assert main([*args, "--aws-account-id=444455556666", "--aws-partition=aws-cn"]) == 0
    assert role_of(yaml.safe_load(capsys.readouterr().out)) == "arn:aws-cn:iam::444455556666:role/s3-reader"
    assert main(args) == 2
    assert "--compose-role-arn offline needs --aws-account-id" in capsys.readouterr().err


def test_yaml_output_has_no_anchors_when_containers_share_an_injected_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each container gets entries of its own: a shared one printed as ``&id001``/``*id001`` anchors,
    and a consumer that edited one container's entry would have changed every other's."""
    sas = write(tmp_path, "sas.yaml", SA_DOCS)
    two = pod("team-a")
    two["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    pod_file = write(tmp_path, "pod.yaml", two)
    assert main(["mutate", "--pod", str(pod_file), "--service-account", str(sas), "--role-session-name=pod"]) == 0
    out = capsys.readouterr().out
    assert "&id" not in out
    assert "*id" not in out
    mutated = yaml.safe_load(out)
    names = [
        entry
        for container in mutated["spec"]["containers"]
        for entry in container["env"]
        if entry["name"] == "AWS_ROLE_SESSION_NAME"
    ]
    assert len(names) == 2
    assert names[0] is not names[1]

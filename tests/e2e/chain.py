"""The IRSA credential chain, played end to end without a kubelet or AWS:

1. the kubelet's part: request the projected token the stored pod's ``aws-iam-token`` volume asks
   for (TokenRequest with its audience and expirationSeconds, bound to the pod) and write it where
   the container would see it (the volume mount path joined with the projected ``path``);
2. the IAM OIDC provider's part: verify the token as AWS would (RS256 signature against the cluster's
   own JWKS, issuer, subject, audience ``sts.amazonaws.com``, lifetime);
3. the SDK's part: boto3 in a clean subprocess with exactly the env the webhook injected (plus an
   STS endpoint pointing at moto) calls ``sts:GetCallerIdentity``, which goes through
   AssumeRoleWithWebIdentity with the token file and role ARN from that env.
Each step raises ChainBroken saying what broke.
"""

from __future__ import annotations

import json
import posixpath
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt

from tests.support import kuberest as k
from tests.support.controlplane import STS_AUDIENCE

BOTO3_TIMEOUT = 60.0

# Prints the caller identity as JSON, or the exception and exit 1. Runs in a subprocess so that the
# environment is exactly the injected one (not this test process's) and credentials are resolved by
# boto3's real default chain from scratch.
_BOTO3_SCRIPT = """
import json, sys
import boto3
try:
    identity = boto3.client("sts").get_caller_identity()
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    sys.exit(1)
identity.pop("ResponseMetadata", None)
print(json.dumps(identity))
"""


class ChainBroken(AssertionError):
    """A step of the credential chain failed; the message names the step."""


@dataclass(frozen=True)
class Injected:
    """What a stored pod tells the kubelet (volume, mount) and the SDK (env) for one container."""

    env: dict[str, str]
    audience: str
    expiration_seconds: int
    token_path_in_container: str  # where the kubelet puts the token: mountPath + projected path

    @classmethod
    def from_pod(cls, pod: k.JSON, container: str) -> Injected:
        c = k.find_container(pod, container)
        volume, mount = k.token_volume(pod), k.token_mount(c)
        if volume is None or mount is None:
            raise ChainBroken(f"container {container!r} has no {k.TOKEN_VOLUME} volume mounted")
        source = volume["projected"]["sources"][0]["serviceAccountToken"]
        return cls(
            env=kubelet_env(pod, c),
            audience=source.get("audience", ""),
            expiration_seconds=source["expirationSeconds"],
            token_path_in_container=posixpath.join(mount["mountPath"], source["path"]),
        )

    def tampered(self, **changes: Any) -> Injected:
        """A copy with some values changed, as a webhook with a bug would have injected them."""
        env = dict(self.env)
        env.update(changes.pop("env", {}))
        return replace(self, env=env, **changes)


# The downward API fields the kubelet resolves for env ``valueFrom.fieldRef`` that these tests meet.
_FIELD_PATHS = {
    "metadata.name": lambda pod: pod["metadata"]["name"],
    "metadata.namespace": lambda pod: pod["metadata"]["namespace"],
}


def kubelet_env(pod: k.JSON, container: k.JSON) -> dict[str, str]:
    """A container's env as the kubelet gives it to the process: values as they are, and
    ``valueFrom.fieldRef`` resolved from the stored pod (so a generateName pod's final name)."""
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "valueFrom" not in entry:
            env[entry["name"]] = entry.get("value", "")
            continue
        field_path = entry["valueFrom"].get("fieldRef", {}).get("fieldPath")
        if field_path not in _FIELD_PATHS:
            raise ChainBroken(f"env {entry['name']}: the kubelet stand-in cannot resolve {entry['valueFrom']}")
        env[entry["name"]] = _FIELD_PATHS[field_path](pod)
    return env


def request_kubelet_token(kube: k.KubeRest, pod: k.JSON, injected: Injected) -> str:
    """The token the kubelet would write for this volume: TokenRequest bound to the pod."""
    ns, sa = pod["metadata"]["namespace"], pod["spec"].get("serviceAccountName", "default")
    spec: dict[str, Any] = {
        "expirationSeconds": injected.expiration_seconds,
        "boundObjectRef": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod["metadata"]["name"],
            "uid": pod["metadata"]["uid"],
        },
    }
    if injected.audience:
        spec["audiences"] = [injected.audience]
    review = kube.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    token: str = review["status"]["token"]
    return token


def verify_web_identity_token(token: str, jwks: k.JSON, issuer: str, subject: str, lifetime: int) -> dict[str, Any]:
    """Check the token as an IAM OIDC provider for this cluster (client ID sts.amazonaws.com) would."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "RS256":
            raise ChainBroken(f"token is signed with {header.get('alg')}, not RS256")
        keys = jwt.PyJWKSet.from_dict(jwks)
        key = next((key for key in keys.keys if key.key_id == header.get("kid")), None)
        if key is None:
            raise ChainBroken(f"token key id {header.get('kid')!r} is not in the cluster's JWKS")
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=STS_AUDIENCE,
            issuer=issuer,
            options={"require": ["aud", "exp", "iat", "iss", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise ChainBroken(f"token rejected: {type(exc).__name__}: {exc}") from exc
    if claims["sub"] != subject:
        raise ChainBroken(f"token subject {claims['sub']!r} is not {subject!r}")
    if claims["exp"] - claims["iat"] != lifetime:
        raise ChainBroken(f"token lifetime {claims['exp'] - claims['iat']}s is not {lifetime}s")
    return claims


def write_token(root: Path, injected: Injected, token: str) -> Path:
    """Write the token where the kubelet would, under ``root`` standing in for the container's "/".

    The pod's paths are absolute paths inside the container; this machine's /var/run is not ours to
    write. So every container path P becomes ``root`` + P here, for the file written (the kubelet's
    side) and for AWS_WEB_IDENTITY_TOKEN_FILE (the SDK's side) alike: they meet only if the webhook
    injected the same path that the volume mount makes the kubelet write.
    """
    path = in_root(root, injected.token_path_in_container)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token)
    return path


def in_root(root: Path, container_path: str) -> Path:
    return root / container_path.lstrip("/")


def sdk_environment(root: Path, injected: Injected, sts_endpoint: str) -> dict[str, str]:
    """Exactly the injected env (token path mapped under ``root``) plus what keeps the SDK local."""
    env = {name: value for name, value in injected.env.items() if name.startswith("AWS_")}
    if "AWS_WEB_IDENTITY_TOKEN_FILE" in env:
        env["AWS_WEB_IDENTITY_TOKEN_FILE"] = str(in_root(root, env["AWS_WEB_IDENTITY_TOKEN_FILE"]))
    home = root / "home"
    home.mkdir(exist_ok=True)
    env.update(
        {
            # STS is moto on 127.0.0.1: the SDK's service-specific endpoint setting.
            "AWS_ENDPOINT_URL_STS": sts_endpoint,
            # Nothing but the injected values may yield credentials: no config or credentials
            # files, and never the EC2 metadata service (it is not on this machine's loopback).
            "HOME": str(home),
            "AWS_CONFIG_FILE": str(root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return env


def caller_identity(env: dict[str, str]) -> dict[str, Any]:
    """Run boto3's get_caller_identity with exactly ``env``; ChainBroken if the SDK fails."""
    result = subprocess.run(
        [sys.executable, "-c", _BOTO3_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=BOTO3_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise ChainBroken(f"boto3 failed: {result.stdout.strip()} {result.stderr.strip()[-2000:]}")
    identity: dict[str, Any] = json.loads(result.stdout)
    return identity


def assumed_role_arn_prefix(role_arn: str) -> str:
    """arn:aws:iam::ACCOUNT:role/[path/]NAME -> arn:aws:sts::ACCOUNT:assumed-role/NAME/ (AWS's format)."""
    partition, account, resource = role_arn.split(":")[1], role_arn.split(":")[4], role_arn.split(":")[5]
    return f"arn:{partition}:sts::{account}:assumed-role/{resource.rsplit('/', 1)[-1]}/"

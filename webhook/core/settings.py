"""Mutation settings: the flags that change what is injected into a pod.

Server-only settings (ports, TLS, cluster access) live in ``webhook.options.config``; keeping this record
small lets the pure core and the offline ``mutate`` command share it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from webhook.core.arn import compose_role_arn

DEFAULT_ANNOTATION_PREFIX = "eks.amazonaws.com"
DEFAULT_AUDIENCE = "sts.amazonaws.com"
DEFAULT_MOUNT_PATH = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
DEFAULT_TOKEN_EXPIRATION = 86400
# kube-apiserver rejects a projected token volume whose expirationSeconds is below 10 minutes ...
MIN_TOKEN_EXPIRATION = 600
# ... or above 2^32 seconds (pkg/apis/core/validation: "must not be more than 2^32 seconds").
MAX_TOKEN_EXPIRATION = 1 << 32

VOLUME_NAME = "aws-iam-token"
TOKEN_FILE_NAME = "token"  # noqa: S105 - a file name, not a secret

# EKS Pod Identity ("container credentials"): upstream's flag defaults.
DEFAULT_CC_AUDIENCE = "pods.eks.amazonaws.com"
DEFAULT_CC_MOUNT_PATH = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount"
DEFAULT_CC_VOLUME_NAME = "eks-pod-identity-token"
DEFAULT_CC_TOKEN_PATH = "eks-pod-identity-token"  # noqa: S105 - a file name, not a secret
DEFAULT_CC_FULL_URI = "http://169.254.170.23/v1/credentials"


@dataclass(frozen=True, slots=True)
class Settings:
    annotation_prefix: str = DEFAULT_ANNOTATION_PREFIX
    token_audience: str = DEFAULT_AUDIENCE
    token_mount_path: str = DEFAULT_MOUNT_PATH
    token_expiration: int = DEFAULT_TOKEN_EXPIRATION
    aws_default_region: str = ""
    sts_regional_endpoint: bool = False
    # [ours] Configuration problems deny the pod instead of only warning.
    strict: bool = False
    # [ours] --role-session-name=pod: AWS_ROLE_SESSION_NAME from the pod's name for every IRSA pod
    # whose ServiceAccount does not say otherwise.
    role_session_name: bool = False
    # --compose-role-arn: a role-arn without "arn:" becomes arn:<partition>:iam::<account>:role/<value>.
    # Empty account: off. Both come from the flags or, on EC2, from IMDS at startup (webhook.aws.imds).
    role_arn_account: str = ""
    role_arn_partition: str = "aws"
    # EKS Pod Identity: what a pod listed in --watch-container-credentials-config gets.
    container_credentials_audience: str = DEFAULT_CC_AUDIENCE
    container_credentials_mount_path: str = DEFAULT_CC_MOUNT_PATH
    container_credentials_volume_name: str = DEFAULT_CC_VOLUME_NAME
    container_credentials_token_path: str = DEFAULT_CC_TOKEN_PATH
    container_credentials_full_uri: str = DEFAULT_CC_FULL_URI

    # Derived once here rather than on every admission (the mutation is the hot path).
    token_file: str = field(init=False)
    """The token path inside a Linux container: mount path joined with ``token``, normalised."""
    windows_token_file: str = field(init=False)
    """Windows containers see the same mount under ``C:``; only the env value changes."""
    normalised_mount_path: str = field(init=False)
    cc_token_file: str = field(init=False)
    """AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: the Pod Identity mount path joined with its token path."""
    cc_windows_token_file: str = field(init=False)
    cc_normalised_mount_path: str = field(init=False)
    # The pod annotations read on every admission, spelled once.
    pod_expiration_key: str = field(init=False)
    skip_containers_key: str = field(init=False)
    include_containers_key: str = field(init=False)

    def __post_init__(self) -> None:
        token_file = posixpath.normpath(posixpath.join(self.token_mount_path, TOKEN_FILE_NAME))
        object.__setattr__(self, "token_file", token_file)
        object.__setattr__(self, "windows_token_file", _windows(token_file))
        object.__setattr__(self, "normalised_mount_path", posixpath.normpath(self.token_mount_path))
        cc_mount = self.container_credentials_mount_path
        cc_token_file = posixpath.normpath(posixpath.join(cc_mount, self.container_credentials_token_path))
        object.__setattr__(self, "cc_token_file", cc_token_file)
        object.__setattr__(self, "cc_windows_token_file", _windows(cc_token_file))
        object.__setattr__(self, "cc_normalised_mount_path", posixpath.normpath(cc_mount))
        object.__setattr__(self, "pod_expiration_key", self.annotation("token-expiration"))
        object.__setattr__(self, "skip_containers_key", self.annotation("skip-containers"))
        object.__setattr__(self, "include_containers_key", self.annotation("include-containers"))

    def annotation(self, key: str) -> str:
        return f"{self.annotation_prefix}/{key}"

    def composed_role_arn(self, value: str) -> str:
        """``value`` composed with the account and partition when ``--compose-role-arn`` is on."""
        if not self.role_arn_account:
            return value
        return compose_role_arn(value, self.role_arn_account, self.role_arn_partition)


def _windows(path: str) -> str:
    """A Linux container path as a Windows container sees the same mount: under ``C:``, backslashes."""
    return "C:" + path.replace("/", "\\")

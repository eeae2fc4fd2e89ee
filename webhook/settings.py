"""Mutation settings: the flags that change what is injected into a pod.

Server-only settings (ports, TLS, cluster access) live in ``webhook.config``; keeping this record
small lets the pure core and the offline ``mutate`` command share it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

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

    # Derived once here rather than on every admission (the mutation is the hot path).
    token_file: str = field(init=False)
    """The token path inside a Linux container: mount path joined with ``token``, normalised."""
    windows_token_file: str = field(init=False)
    """Windows containers see the same mount under ``C:``; only the env value changes."""
    normalised_mount_path: str = field(init=False)

    def __post_init__(self) -> None:
        token_file = posixpath.normpath(posixpath.join(self.token_mount_path, TOKEN_FILE_NAME))
        object.__setattr__(self, "token_file", token_file)
        object.__setattr__(self, "windows_token_file", "C:" + token_file.replace("/", "\\"))
        object.__setattr__(self, "normalised_mount_path", posixpath.normpath(self.token_mount_path))

    def annotation(self, key: str) -> str:
        return f"{self.annotation_prefix}/{key}"

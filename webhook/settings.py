"""Mutation settings: the flags that change what is injected into a pod.

Server-only settings (ports, TLS, cluster access) live in ``webhook.config``; keeping this record
small lets the pure core and the offline ``mutate`` command share it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

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

    def annotation(self, key: str) -> str:
        return f"{self.annotation_prefix}/{key}"

    @property
    def token_file(self) -> str:
        """The token path inside a Linux container: mount path joined with ``token``, normalised."""
        return posixpath.normpath(posixpath.join(self.token_mount_path, TOKEN_FILE_NAME))

    @property
    def windows_token_file(self) -> str:
        """Windows containers see the same mount under ``C:``; only the env value changes."""
        return "C:" + self.token_file.replace("/", "\\")

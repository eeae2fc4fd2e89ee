"""What the e2e fixtures (conftest.py) and the e2e tests share: the session's webhook and its labels."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tests.support.server import Server

# Namespaces carrying this label are served by the session's shared webhook configuration.
SHARED_CONFIG = "irsa-e2e-shared"
SELECTOR_LABEL = "irsa-e2e.test/webhook"
SHARED_LABEL = {SELECTOR_LABEL: SHARED_CONFIG}
# The shared webhook runs with a default region, so every injected container gets one.
REGION = "us-west-2"

# ``make_namespace(labels=SHARED_LABEL, prefix=None) -> name``
NamespaceFactory = Callable[..., str]


@dataclass
class SharedWebhook:
    process: Server
    config_name: str
    labels: Mapping[str, str]

"""What the node fixtures (conftest.py) and the node tests share."""

from __future__ import annotations

from collections.abc import Callable

# Namespaces carrying this label are served by the session's webhook on the host.
NODE_CONFIG = "irsa-node-shared"
NODE_LABEL = {"irsa-node.test/webhook": NODE_CONFIG}

# ``make_namespace(labels=NODE_LABEL) -> name``
NamespaceFactory = Callable[..., str]
# The session's webhook runs with a default region: the SDK's regional calls need one.
REGION = "us-west-2"

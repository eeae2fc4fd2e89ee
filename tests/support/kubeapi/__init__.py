"""The fake Kubernetes API: one object model, two stand-ins.

The two stand-ins serve different levels, and neither can take the other's place:

- ``http``: ``FakeApiServer`` serves a ``FakeCluster`` over real HTTP on 127.0.0.1. Code under test
  reaches it as it reaches a cluster, through a kubeconfig and the kubernetes client's whole REST
  stack (the audit: paginated lists with continue tokens, GETs, evictions, a 410 on an expired
  token); it can run in a process of its own so that what a test measures is the client alone.
- ``scripted``: ``FakeCoreV1`` is put in place of a client's ``CoreV1Api`` in-process. The watch
  loops are tested against it because their faults happen between bytes, where a server cannot
  place them on cue: an exception where the stream is read (a read timeout, a dropped
  connection), a stream that blocks until the loop shuts its socket, a GET held until the test
  releases it while watch events arrive.

The HTTP stand-in also serves the writes of the provisioner's controller (``store``: Leases, custom
resources, Events with the API server's conflict rules; the JWKS and TokenRequests).

Both serve the objects of ``objects`` (ServiceAccounts, ConfigMaps, pods, list pages, watch events,
Status answers), so a test speaks of a cluster in the same words at either level.
"""

from .http import FakeApiServer, FakeCluster, Request
from .objects import (
    JSON,
    ROLE_ANNOTATION,
    config_map,
    event,
    identities_file,
    list_of,
    pod,
    service_account,
    status,
)
from .scripted import FakeCoreV1, LiveStream, Raw, Stream, gone, page
from .store import ObjectStore

__all__ = [
    "JSON",
    "ROLE_ANNOTATION",
    "FakeApiServer",
    "FakeCluster",
    "FakeCoreV1",
    "LiveStream",
    "ObjectStore",
    "Raw",
    "Request",
    "Stream",
    "config_map",
    "event",
    "gone",
    "identities_file",
    "list_of",
    "page",
    "pod",
    "service_account",
    "status",
]

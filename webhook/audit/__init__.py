"""``irsa-webhook audit``: pods that should have AWS credentials but lack them, and pods whose injected
role is no longer their ServiceAccount's.

- :mod:`webhook.audit.findings`: the pure decision for one stored pod (which pods are audited, what
  is wrong with one);
- :mod:`webhook.audit.scan`: the walk over a cluster (paginated lists, the re-check of each finding,
  evictions);
- :mod:`webhook.audit.report`: the table and the JSON document.

The command itself (flags, exit codes) is :mod:`webhook.commands.audit`.
"""

from webhook.kube import LIST_PAGE_SIZE

DEFAULT_PAGE_SIZE = LIST_PAGE_SIZE
"""Objects per list request (``--page-size``): bounds the memory of one page (the arithmetic is at
:data:`~webhook.kube.LIST_PAGE_SIZE`)."""

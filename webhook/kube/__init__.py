"""Kubernetes access shared by every application (see docs/architecture.md).

Only the standard library here: commands import this package's constants when they register their
flags, before they know whether they will talk to a cluster at all.
"""

# Objects per page of every list of objects a tenant writes (the ServiceAccount cache, the audit's
# --page-size default). One page must fit far under the shipped 256Mi limit even when every object in
# it is as large as a tenant may make it. While a page is read it is held about three times over
# (urllib3's chunks and their join, then those bytes beside the decoded objects; measured: 2.9x), on
# top of the ~165 MiB a replica peaks at with an empty cluster (most of it the kubernetes client):
# - 256 KiB of annotations per object, what kube-apiserver allows: 16 x 256 KiB x 3 = 12 MiB;
# - 1.5 MiB per object, etcd's request limit (labels or a long `secrets` list, which a tenant can
#   also write): 16 x 1.5 MiB x 3 = 72 MiB, still under the limit.
# The price is one request per 16 objects: measured, 5,000 ServiceAccounts list in ~3 s more than
# at 500 per page.
LIST_PAGE_SIZE = 16

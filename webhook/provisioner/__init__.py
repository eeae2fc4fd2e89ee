"""The provisioner: the AWS side of a self-hosted issuer (and, later, workload roles), from declarative objects.

One engine, two front ends: a pure planner (:mod:`.planner`) turns an object and what was observed
(:mod:`.model`) into changes; an executor applies them. ``irsa-webhook provision`` and
``irsa-webhook controller`` are front ends over the same engine (:mod:`.engine`).
"""

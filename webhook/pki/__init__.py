"""Self-managed serving certificates (``--self-managed-tls-secret``): the webhook makes its own CA and
serving pair, keeps them in one Secret, keeps its MutatingWebhookConfiguration's caBundle in step,
and rotates before expiry with the old CA still trusted while replicas move to the new pair.

``pairs`` makes and reads certificates, ``state`` is the Secret's content and the pure decision of
the next step, ``keeper`` runs the loop that reads the cluster, writes, and puts the pair to serve
into the ``--tls-cert``/``--tls-key`` files, from which the server reloads it.
"""

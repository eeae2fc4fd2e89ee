"""One vocabulary for what happened to an admission: the decision (the log line's ``decision``, the
audit's reading of a pod) and the outcome it counts as (the ``outcome`` label of
``irsa_webhook_admission_requests_total``). Every name is spelled here once.
"""

from __future__ import annotations

# -- decisions: why a pod was or was not changed ----------------------------------------------------
MUTATED = "mutated"
NO_ROLE = "no-role-arn"  # no identity, or a ServiceAccount without a role (and no other source)
ALREADY_MUTATED = "already-mutated"  # everything is there already: reinvocation, a copied manifest
VOLUME_CONFLICT = "volume-conflict"  # a volume of the token's name that is not a projected token
MALFORMED = "malformed-pod"  # spec is not an object
SA_NOT_FOUND = "service-account-not-found"
DENIED_STRICT = "denied-strict"  # --strict and a configuration problem
BAD_OBJECT = "bad-object"  # a Pod CREATE whose object cannot be read (answered 400)
IGNORED = "ignored"  # not a Pod CREATE: allowed untouched
DECISIONS = (
    MUTATED,
    NO_ROLE,
    ALREADY_MUTATED,
    VOLUME_CONFLICT,
    MALFORMED,
    SA_NOT_FOUND,
    DENIED_STRICT,
    BAD_OBJECT,
    IGNORED,
)
"""What the pure core decides is the first seven; the admission layer adds the last two."""

# -- outcomes: the requests metric's label ------------------------------------------------------------
OUTCOME_MUTATED = "mutated"
OUTCOME_NOT_MUTATED = "not_mutated"
OUTCOME_IGNORED = "ignored"
OUTCOME_DENIED = "denied"
OUTCOME_BAD_REQUEST = "bad_request"  # not an AdmissionReview we can answer (HTTP 4xx)
OUTCOME_ERROR = "error"  # an unexpected failure (HTTP 500)
OUTCOMES = (OUTCOME_MUTATED, OUTCOME_NOT_MUTATED, OUTCOME_IGNORED, OUTCOME_DENIED, OUTCOME_BAD_REQUEST, OUTCOME_ERROR)

OUTCOME_OF = {
    MUTATED: OUTCOME_MUTATED,
    NO_ROLE: OUTCOME_NOT_MUTATED,
    ALREADY_MUTATED: OUTCOME_NOT_MUTATED,
    VOLUME_CONFLICT: OUTCOME_NOT_MUTATED,
    MALFORMED: OUTCOME_NOT_MUTATED,
    SA_NOT_FOUND: OUTCOME_NOT_MUTATED,
    DENIED_STRICT: OUTCOME_DENIED,
    BAD_OBJECT: OUTCOME_DENIED,
    IGNORED: OUTCOME_IGNORED,
}
"""The outcome every decision counts as."""

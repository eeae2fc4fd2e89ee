"""The self-managed certificate's next step, without a cluster: the order of a rotation, and the rules
that keep kube-apiserver from meeting a certificate it cannot verify."""

from __future__ import annotations

from webhook.pki import pairs
from webhook.pki.state import Policy, State, Step, bundle, data_of, may_serve, next_step, read

HOSTS = ("127.0.0.1", "webhook.ns.svc")
POLICY = Policy(HOSTS, lifetime=100.0, renew_before=40.0)
NOW = 1_900_000_000.0


def secret_of(state: State) -> dict[str, object]:
    return {"data": data_of(state)}


def expect(step: Step | None, name: str) -> Step:
    assert step is not None, f"no step, expected {name}"
    assert step.name == name, step
    return step


def written(step: Step) -> State:
    """The state the step writes, as the Secret then holds it (read back)."""
    assert step.state is not None
    return read(secret_of(step.state))


def test_a_rotation_publishes_the_new_ca_before_anyone_serves_it() -> None:
    step = next_step(State(), POLICY, NOW, webhook_bundle=b"")
    step = expect(step, "issue")
    state = written(step)
    first = state.current
    assert first is not None
    step = next_step(state, POLICY, NOW, webhook_bundle=b"")
    step = expect(step, "ca-bundle")
    published = step.bundle
    assert next_step(state, POLICY, NOW, published) is None  # in step: nothing to write

    due = NOW + 61  # inside the renewal window
    step = next_step(state, POLICY, due, published)
    step = expect(step, "pending")
    state = written(step)
    assert state.current == first
    assert state.pending is not None
    # Not promoted while the caBundle lacks the pending CA; a replica would not serve it either.
    step = next_step(state, POLICY, due, published)
    step = expect(step, "ca-bundle")
    assert not may_serve(state.pending, (first.fingerprint, first.not_after), published, due)
    both = step.bundle
    assert len(pairs.certificates(both)) == 2
    step = next_step(state, POLICY, due, both)
    step = expect(step, "promote")
    promoted = written(step)
    assert promoted.current == state.pending
    assert bundle(promoted, due) == both  # same bytes after the promotion: no caBundle write
    assert may_serve(promoted.current, (first.fingerprint, first.not_after), both, due)
    assert next_step(promoted, POLICY, due, both) is None
    # The old CA leaves once it has expired, with the pair it signed: the caBundle first, then the Secret.
    later = first.not_after + 1
    shrunk = expect(next_step(promoted, POLICY, later, both), "ca-bundle").bundle
    assert promoted.current is not None
    assert shrunk == promoted.current.ca_pem
    expect(next_step(promoted, POLICY, later, shrunk), "prune")


def test_without_a_webhook_configuration_nothing_is_promoted() -> None:
    issued = written(expect(next_step(State(), POLICY, NOW, None), "issue"))
    pending = written(expect(next_step(issued, POLICY, NOW + 61, None), "pending"))
    assert next_step(pending, POLICY, NOW + 61, None) is None


def test_a_garbage_secret_is_replaced_and_the_published_cas_stay_trusted() -> None:
    old = pairs.issue(HOSTS, 100.0, NOW)
    state = read({"data": {**data_of(State(old)), "tls.crt": "Z2FyYmFnZQ=="}})
    assert state.current is None
    assert "tls.crt: not PEM" in state.problems[0]
    step = next_step(state, POLICY, NOW, webhook_bundle=old.ca_pem)
    step = expect(step, "issue")
    replaced = written(step)
    cas = {pairs.fingerprint(c) for c in pairs.certificates(bundle(replaced, NOW))}
    assert old.ca_fingerprint in cas  # replicas still serving the lost pair keep being trusted
    # ... and a replica serving it moves to the new pair only once the caBundle trusts that.
    new = replaced.current
    assert new is not None
    assert not may_serve(new, (old.fingerprint, old.not_after), old.ca_pem, NOW)
    assert may_serve(new, (old.fingerprint, old.not_after), bundle(replaced, NOW), NOW)
    assert may_serve(new, None, None, NOW)  # nothing served yet: nothing to protect


def test_a_certificate_for_other_hosts_is_rotated() -> None:
    other = pairs.issue(("old.ns.svc",), 100.0, NOW)
    state = State(other)
    step = next_step(state, POLICY, NOW, bundle(state, NOW))
    assert "names" in expect(step, "pending").reason

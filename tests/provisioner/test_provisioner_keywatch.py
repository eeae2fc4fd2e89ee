"""The key watch: a rotation on kube-apiserver is news, the same keys read again are not."""

from __future__ import annotations

from webhook.kube.issuerkeys import IssuerKeys
from webhook.provisioner.keywatch import KeyWatch, fingerprint


def keys(*kids: str, signing: str | None = "a") -> IssuerKeys:
    return IssuerKeys(jwks={"keys": [{"kid": kid} for kid in kids]}, signing_kid=signing)


def test_only_a_change_after_the_first_reading_is_news() -> None:
    readings = [
        keys("a"),
        keys("a"),
        keys("a", "b"),
        keys("b", "a"),
        keys("a", "b", signing="b"),
        keys("b", signing="b"),
    ]
    changes: list[int] = []
    watch = KeyWatch(lambda: readings.pop(0), lambda: changes.append(1), interval=1)
    assert [watch.poll() for _ in range(6)] == [False, False, True, False, True, True]
    assert len(changes) == 3


def test_an_unreadable_reading_is_no_news_and_keeps_the_baseline() -> None:
    readings = [keys("a"), IssuerKeys(jwks=None, signing_kid=None, error="forbidden"), keys("a"), keys("a", "b")]
    watch = KeyWatch(lambda: readings.pop(0), lambda: None, interval=1)
    assert [watch.poll() for _ in range(4)] == [False, False, False, True]


def test_the_fingerprint_is_the_kid_set_and_the_signer() -> None:
    assert fingerprint(keys("b", "a")) == (("a", "b"), "a")
    assert fingerprint(IssuerKeys(jwks=None, signing_kid="a")) is None

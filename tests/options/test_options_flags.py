"""The Go-style flag layer (``webhook.options.flags``): Go durations, single-dash long flags, and the
precedence of a flag over its environment variable over its default."""

from __future__ import annotations

import argparse

import pytest

from webhook.options.flags import Flag, FlagError, normalise_argv, parse_duration, resolve


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("100ms", 0.1), ("1m30s", 90), ("2h", 7200), ("1.5s", 1.5), ("250us", 0.00025), ("15", 15)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1x", "ms", "1m30", "abc"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(FlagError):
        parse_duration(text)


FLAGS = (Flag("port", "int", 443, ""), Flag("in-cluster", "bool", False, ""), Flag("name", "str", "d", ""))


def test_single_dash_long_flags_are_normalised() -> None:
    assert normalise_argv(["-port=1", "-port", "2", "-v=4", "-in-cluster=false", "-x"], FLAGS) == [
        "--port=1", "--port", "2", "-v=4", "--in-cluster=false", "-x",
    ]  # fmt: skip


def test_precedence_flag_over_env_over_default() -> None:
    ns = argparse.Namespace(port="8443", in_cluster=None, name=None)
    env = {"IRSA_WEBHOOK_PORT": "1", "IRSA_WEBHOOK_IN_CLUSTER": "true"}
    assert resolve(ns, FLAGS, env) == {"port": 8443, "in_cluster": True, "name": "d"}
    with pytest.raises(FlagError, match="IRSA_WEBHOOK_IN_CLUSTER"):
        resolve(argparse.Namespace(port=None, in_cluster=None, name=None), FLAGS, {"IRSA_WEBHOOK_IN_CLUSTER": "yes"})

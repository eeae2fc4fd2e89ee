"""``--tls-min-version`` and ``--tls-cipher-suites`` take every spelling upstream (Go's crypto/tls) takes.

TLS 1.0/1.1 floors are raised to 1.2 with one log line; insecure suites are dropped with one log line;
names Go does not know are refused at startup with exit 2 and one line listing what is accepted.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tests.support.certs import generate_certs, handshake, served_serial
from tests.support.server import run_to_exit, serve_argv, start_server
from webhook.server import devcerts
from webhook.server.tls import ServingTLS, TLSConfigError, cipher_string, min_tls_version

# Go's crypto/tls CipherSuites() and InsecureCipherSuites() names (across Go releases), its legacy
# CHACHA20 aliases, and how we treat each: the OpenSSL suite we enable, or None when dropped.
GO_SUITES: dict[str, str | None] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_RSA_WITH_RC4_128_SHA": None,
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": None,
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": None,
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": None,
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": None,
    "TLS_RSA_WITH_AES_128_CBC_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": None,
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": None,
}
TLS13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
SPELLINGS = ["1.0", "1.1", "1.2", "1.3", "VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13"]


@pytest.mark.parametrize(
    ("value", "floor", "raised"),
    [
        ("1.0", ssl.TLSVersion.TLSv1_2, True),
        ("1.1", ssl.TLSVersion.TLSv1_2, True),
        ("1.2", ssl.TLSVersion.TLSv1_2, False),
        ("1.3", ssl.TLSVersion.TLSv1_3, False),
        ("VersionTLS10", ssl.TLSVersion.TLSv1_2, True),
        ("VersionTLS11", ssl.TLSVersion.TLSv1_2, True),
        ("VersionTLS12", ssl.TLSVersion.TLSv1_2, False),
        ("VersionTLS13", ssl.TLSVersion.TLSv1_3, False),
    ],
)
def test_min_version_spellings(value: str, floor: ssl.TLSVersion, raised: bool) -> None:
    version, notes = min_tls_version(value)
    assert version == floor
    if raised:
        assert len(notes) == 1
        assert f"--tls-min-version={value} raised to 1.2" in notes[0]
    else:
        assert notes == []


@pytest.mark.parametrize("value", ["1.4", "", "TLS1.2", "tls12", "VersionTLS14", "versiontls12", "1", "SSLv3"])
def test_unknown_min_version_names_every_accepted_spelling(value: str) -> None:
    with pytest.raises(TLSConfigError) as info:
        min_tls_version(value)
    message = str(info.value)
    assert "\n" not in message
    assert all(spelling in message for spelling in SPELLINGS)


@pytest.mark.parametrize(("name", "openssl"), sorted(GO_SUITES.items()))
def test_every_go_cipher_suite_name_is_accepted(name: str, openssl: str | None) -> None:
    ciphers, notes = cipher_string(name)
    if openssl is None:
        assert ciphers is None  # nothing usable left: the default set
        assert any(name in note and "insecure" in note for note in notes)
        assert any("default" in note for note in notes)
        return
    assert ciphers == openssl
    assert notes == []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers(ciphers)  # OpenSSL knows it and enables it at its security level
    assert [c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"] == [openssl]


@pytest.mark.parametrize("name", TLS13)
def test_tls13_suite_names_are_accepted(name: str) -> None:
    assert cipher_string(name)[0] is None
    assert cipher_string(f"{name},TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256") == ("ECDHE-RSA-AES128-GCM-SHA256", [])


@pytest.mark.parametrize(
    ("flag", "ciphers", "dropped"),
    [
        pytest.param("", None, [], id="empty"),
        pytest.param(
            "TLS_RSA_WITH_RC4_128_SHA, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            ["TLS_RSA_WITH_RC4_128_SHA", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"],
            id="insecure-dropped-secure-kept",
        ),
        pytest.param(
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,",
            "ECDHE-RSA-CHACHA20-POLY1305",
            [],
            id="alias-and-name-once",
        ),
        pytest.param(
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256",
            [],
            id="order-kept",
        ),
    ],
)
def test_cipher_suite_lists(flag: str, ciphers: str | None, dropped: list[str]) -> None:
    result, notes = cipher_string(flag)
    assert result == ciphers
    if dropped:
        assert len(notes) == 1
        assert notes[0].endswith(", ".join(dropped))
    else:
        assert notes == []


@pytest.mark.parametrize(
    "flag", ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_NOPE", "ECDHE-RSA-AES128-GCM-SHA256", "tls_aes_128_gcm_sha256"]
)
def test_names_go_does_not_know_are_refused(flag: str) -> None:
    with pytest.raises(TLSConfigError) as info:
        cipher_string(flag)
    message = str(info.value)
    assert "unknown TLS cipher suite" in message
    assert "\n" not in message
    assert all(name in message for name in [*GO_SUITES, *TLS13])


def test_serving_tls_applies_the_raised_floor_and_keeps_the_notes(tmp_path: Path) -> None:
    files = devcerts.generate(tmp_path)
    tls = ServingTLS(str(files.cert), str(files.key), "VersionTLS10", "TLS_RSA_WITH_RC4_128_SHA")
    assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls.served.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert len(tls.notes) == 3  # raised floor, dropped suite, default set kept


# --- the real server ----------------------------------------------------------------------------


def test_min_version_11_starts_and_serves_tls12(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--tls-min-version=1.1")
    try:
        context = ssl.create_default_context(cafile=str(server.certs.ca))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with handshake(server.port, context) as tls:
            assert tls.version() == "TLSv1.2"
        lines = [line for line in server.log.read_text().splitlines() if "--tls-min-version" in line]
        assert len(lines) == 1
        assert "raised to 1.2" in lines[0]
    finally:
        server.stop()


def test_insecure_suites_are_dropped_and_the_rest_served(tmp_path: Path) -> None:
    flag = "TLS_RSA_WITH_RC4_128_SHA,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
    server = start_server(tmp_path, f"--tls-cipher-suites={flag}")
    try:
        context = ssl.create_default_context(cafile=str(server.certs.ca))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with handshake(server.port, context) as tls:
            cipher = tls.cipher()
            assert cipher is not None
            assert cipher[0] == "ECDHE-ECDSA-CHACHA20-POLY1305"
        assert served_serial(server.port, server.certs.ca, "127.0.0.1") == server.served_serial()
        lines = [line for line in server.log.read_text().splitlines() if "--tls-cipher-suites" in line]
        assert len(lines) == 1
        assert "TLS_RSA_WITH_RC4_128_SHA, TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256" in lines[0]
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("flag", "needle"),
    [
        pytest.param("--tls-min-version=1.4", "--tls-min-version must be one of 1.0, 1.1, 1.2, 1.3", id="version"),
        pytest.param("--tls-cipher-suites=TLS_NOPE", "unknown TLS cipher suite 'TLS_NOPE'", id="cipher"),
    ],
)
def test_unknown_values_exit_2_with_one_line(tmp_path: Path, flag: str, needle: str) -> None:
    certs = generate_certs(tmp_path / "certs")
    result = run_to_exit(serve_argv(certs, flag))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr

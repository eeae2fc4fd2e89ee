"""Key generation and reading public keys from every PEM form kube-apiserver accepts."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support.cli import Runner
from tests.support.oidckeys import TESTDATA
from webhook.oidc.errors import InputError
from webhook.oidc.jwks import key_id
from webhook.oidc.keys import KeyType, generate_key_pair, load_public_keys


def _load_rsa(name: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((TESTDATA / name).read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(name)
    return key


def _load_ec(name: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key((TESTDATA / name).read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(name)
    return key


RSA_PRIVATE = _load_rsa("rsa-private.pem")
EC_PRIVATE = _load_ec("ec-private.pem")
RSA_KID = key_id(RSA_PRIVATE.public_key())


def _private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, fmt: serialization.PrivateFormat) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sa-signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


PKCS1_PUBLIC = RSA_PRIVATE.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)


@pytest.mark.parametrize(
    ("pem", "from_private"),
    [
        pytest.param((TESTDATA / "rsa-public.pem").read_bytes(), False, id="spki-public"),
        pytest.param(PKCS1_PUBLIC, False, id="pkcs1-rsa-public"),
        pytest.param(_private(RSA_PRIVATE, serialization.PrivateFormat.PKCS8), True, id="pkcs8-private"),
        pytest.param(_private(RSA_PRIVATE, serialization.PrivateFormat.TraditionalOpenSSL), True, id="pkcs1-private"),
        pytest.param(_certificate(RSA_PRIVATE), False, id="certificate"),
        pytest.param(b"leading text\n" + PKCS1_PUBLIC + b"trailing\n", False, id="text-around-the-block"),
    ],
)
def test_every_accepted_form_gives_the_same_key(pem: bytes, from_private: bool) -> None:
    (loaded,) = load_public_keys(pem, "k.pem")
    assert key_id(loaded.key) == RSA_KID
    assert loaded.from_private_key is from_private


def test_sec1_ec_private_key() -> None:
    (loaded,) = load_public_keys(_private(EC_PRIVATE, serialization.PrivateFormat.TraditionalOpenSSL))
    assert loaded.from_private_key
    assert isinstance(loaded.key, ec.EllipticCurvePublicKey)


def test_several_blocks_are_several_keys_in_order() -> None:
    pem = (TESTDATA / "ec-public.pem").read_bytes() + (TESTDATA / "rsa-public.pem").read_bytes()
    loaded = load_public_keys(pem, "both.pem")
    assert isinstance(loaded[1].key, rsa.RSAPublicKey)
    assert isinstance(loaded[0].key, ec.EllipticCurvePublicKey)
    assert [item.source for item in loaded] == ["both.pem (PEM block 1)", "both.pem (PEM block 2)"]


ENCRYPTED = RSA_PRIVATE.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.BestAvailableEncryption(b"pw"),
)
P224_PUBLIC = (
    ec.generate_private_key(ec.SECP224R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
)


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        pytest.param(b"", "no PEM block found", id="empty"),
        pytest.param(b"ssh-rsa AAAAB3Nza... user@host\n", "no PEM block found", id="ssh-key"),
        pytest.param(
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "cannot parse the PUBLIC KEY",
            id="garbage",
        ),
        pytest.param(ENCRYPTED, "encrypted", id="encrypted-private"),
        pytest.param((TESTDATA / "ed25519-public.pem").read_bytes(), "unsupported key type Ed25519", id="ed25519"),
        pytest.param(
            (TESTDATA / "ed25519-private.pem").read_bytes(), "unsupported key type Ed25519", id="ed25519-priv"
        ),
        # Fixed files, not generated here: cryptography deprecates DSA (any use of its dsa module, any
        # DSA key it loads, warns), and the refusal must not depend on that API.
        pytest.param((TESTDATA / "dsa-public.pem").read_bytes(), "unsupported key type DSA", id="dsa"),
        pytest.param((TESTDATA / "dsa-private.pem").read_bytes(), "unsupported key type DSA", id="dsa-priv"),
        pytest.param((TESTDATA / "dsa-certificate.pem").read_bytes(), "unsupported key type DSA", id="dsa-cert"),
        pytest.param(P224_PUBLIC, "unsupported EC curve secp224r1", id="p224"),
        pytest.param(
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "is not a key",
            id="csr",
        ),
    ],
)
def test_bad_key_input(pem: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        load_public_keys(pem, "k.pem")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("k.pem")


@pytest.mark.parametrize(
    ("key_type", "public_type", "size"),
    [
        pytest.param("rsa", rsa.RSAPublicKey, 2048, id="rsa-2048"),
        pytest.param("ec", ec.EllipticCurvePublicKey, 256, id="ec-p256"),
    ],
)
def test_generate_key_pair(key_type: KeyType, public_type: type, size: int) -> None:
    pair = generate_key_pair(key_type)
    assert pair.private_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8
    assert pair.public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")  # SubjectPublicKeyInfo
    private = serialization.load_pem_private_key(pair.private_pem, None)
    public = serialization.load_pem_public_key(pair.public_pem)
    assert isinstance(public, public_type)
    assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    assert public.key_size == size
    assert isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    assert key_id(private.public_key()) == key_id(public)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_generate_writes_modes_and_refuses_overwrite(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    first = cli("keys", "generate", "--out", str(out))
    assert (first.code, first.err) == (0, "")
    key, pub = out / "sa-signer.key", out / "sa-signer.pub"
    assert (_mode(key), _mode(pub)) == (0o600, 0o644)
    (loaded,) = load_public_keys(pub.read_bytes())
    assert f"kid {key_id(loaded.key)}" in first.out
    before = key.read_bytes()

    again = cli("keys", "generate", "--out", str(out))
    assert again.code == 2
    assert again.err_lines == [f"irsa-webhook keys: {key} already exists; pass --force to overwrite it"]
    assert key.read_bytes() == before

    forced = cli("keys", "generate", "--out", str(out), "--force")
    assert forced.code == 0
    assert key.read_bytes() != before
    assert (_mode(key), _mode(pub)) == (0o600, 0o644)
    assert sorted(p.name for p in out.iterdir()) == ["sa-signer.key", "sa-signer.pub"]  # no temp files left


def test_keys_generate_checks_both_files_before_writing(cli: Runner, tmp_path: Path) -> None:
    (tmp_path / "sa-signer.pub").write_text("old")
    result = cli("keys", "generate", "--out", str(tmp_path))
    assert result.code == 2
    assert "sa-signer.pub already exists" in result.err
    assert not (tmp_path / "sa-signer.key").exists()


def test_keys_generate_modes_ignore_umask(cli: Runner, tmp_path: Path) -> None:
    import os

    old = os.umask(0o000)
    try:
        assert cli("keys", "generate", "--out", str(tmp_path), "--type", "ec").code == 0
    finally:
        os.umask(old)
    assert _mode(tmp_path / "sa-signer.key") == 0o600
    (loaded,) = load_public_keys((tmp_path / "sa-signer.pub").read_bytes())
    assert isinstance(loaded.key, ec.EllipticCurvePublicKey)
    assert loaded.key.curve.name == "secp256r1"


def test_keys_generate_refuses_a_symlink_in_place_of_the_key(cli: Runner, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "sa-signer.key").symlink_to(target)
    result = cli("keys", "generate", "--out", str(tmp_path))
    assert result.code == 2
    assert not target.exists()

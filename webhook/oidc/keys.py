"""Service-account signing keys: generating a pair, and reading public keys from PEM text.

Pure functions over bytes; reading and writing files is :mod:`webhook.commands.files`' job.

What a "public key input" may be (``oidc jwks --key``, ``oidc discovery --key``) is decided to
match what kube-apiserver itself accepts in ``--service-account-key-file``: a PEM file holding
one or more blocks, each of which is a public key (``PUBLIC KEY``, i.e. SubjectPublicKeyInfo, or
PKCS#1 ``RSA PUBLIC KEY``), an X.509 ``CERTIFICATE``, or an unencrypted private key (PKCS#8
``PRIVATE KEY``, PKCS#1 ``RSA PRIVATE KEY``, SEC1 ``EC PRIVATE KEY``). For a private key only the
public half is used and nothing secret is ever output; :class:`LoadedKey` records that it came
from a private key so the command can say so. Accepting the private key means the file the API
server signs with can be passed directly, which removes one way to publish the wrong key.

Supported key types are the ones kube-apiserver signs service-account tokens with: RSA
(RS256) and ECDSA on P-256, P-384 and P-521 (ES256, ES384, ES512). Anything else (Ed25519, DSA,
other curves) is an :class:`InputError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from webhook.oidc.errors import InputError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
KeyType = Literal["rsa", "ec"]

# 2048 bits: the size kubeadm and the EKS control plane use for the service-account signer;
# large enough for RS256 today, small enough that token verification stays cheap.
RSA_KEY_BITS = 2048
# 65537: the only public exponent anyone should use (and what kube-apiserver keys have).
RSA_PUBLIC_EXPONENT = 65537

# JOSE algorithm per curve (RFC 7518 section 3.4): the hash size follows the curve size.
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
# JWK "crv" names (RFC 7518 section 6.2.1.1).
EC_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----",
    re.DOTALL,
)
_PUBLIC_LABELS = {b"PUBLIC KEY", b"RSA PUBLIC KEY"}
_PRIVATE_LABELS = {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY"}
_CERTIFICATE_LABEL = b"CERTIFICATE"


@dataclass(frozen=True)
class KeyPair:
    """A freshly generated signing key pair as PEM bytes."""

    private_pem: bytes  # PKCS#8 "PRIVATE KEY", unencrypted: kube-apiserver cannot read a passphrase
    public_pem: bytes  # SubjectPublicKeyInfo "PUBLIC KEY"


@dataclass(frozen=True)
class LoadedKey:
    """A public key read from a PEM block, with where it came from."""

    key: PublicKey
    source: str  # file name (or "<input>") and block number, for messages
    from_private_key: bool


def generate_key_pair(key_type: KeyType = "rsa") -> KeyPair:
    """Generate an RSA-2048 (``rsa``) or ECDSA P-256 (``ec``, for ES256) signing key pair."""
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if key_type == "rsa":
        private_key = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_BITS)
    elif key_type == "ec":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise InputError(f"unsupported key type {key_type!r}: use rsa or ec")
    private_pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return KeyPair(private_pem=private_pem, public_pem=public_key_pem(private_key.public_key()))


def public_key_pem(key: PublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM ("PUBLIC KEY") of ``key``."""
    return key.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def public_key_der(key: PublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of ``key``: the bytes kube-apiserver hashes for the ``kid``."""
    return key.public_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def signing_algorithm(key: PublicKey) -> str:
    """The JOSE ``alg`` kube-apiserver uses with ``key``: RS256, or ES256/384/512 by curve."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    return _EC_ALGORITHMS[key.curve.name]


def load_public_keys(pem: bytes, source: str = "<input>") -> list[LoadedKey]:
    """Every public key in the PEM text ``pem``, in file order (see the module docstring).

    Raises :class:`InputError` when there is no PEM block, when a block cannot be parsed, when a
    private key is encrypted, or when a key is of a type kube-apiserver does not sign with.
    """
    blocks = list(_PEM_BLOCK.finditer(pem))
    if not blocks:
        raise InputError(f"{source}: no PEM block found; expected a public key (-----BEGIN PUBLIC KEY-----)")
    loaded = []
    for number, block in enumerate(blocks, start=1):
        where = source if len(blocks) == 1 else f"{source} (PEM block {number})"
        label = block.group(1)
        key, from_private = _parse_block(label, block.group(0), where)
        loaded.append(LoadedKey(key=_check_supported(key, where), source=where, from_private_key=from_private))
    return loaded


def _parse_block(label: bytes, block: bytes, where: str) -> tuple[object, bool]:
    try:
        if label in _PUBLIC_LABELS:
            return serialization.load_pem_public_key(block), False
        if label == _CERTIFICATE_LABEL:
            return x509.load_pem_x509_certificate(block).public_key(), False
        if label in _PRIVATE_LABELS:
            return serialization.load_pem_private_key(block, password=None).public_key(), True
    except TypeError as exc:  # cryptography's signal for "this key is encrypted"
        raise InputError(f"{where}: the private key is encrypted; pass its public key instead") from exc
    except ValueError as exc:
        raise InputError(f"{where}: cannot parse the {label.decode()} PEM block ({exc})") from exc
    if b"ENCRYPTED" in label:
        raise InputError(f"{where}: the private key is encrypted; pass its public key instead")
    raise InputError(f"{where}: a {label.decode()} PEM block is not a key; expected a PUBLIC KEY")


def _check_supported(key: object, where: str) -> PublicKey:
    if isinstance(key, rsa.RSAPublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name in _EC_ALGORITHMS:
            return key
        raise InputError(f"{where}: unsupported EC curve {key.curve.name}; use P-256, P-384 or P-521")
    kind = type(key).__name__.removeprefix("_").replace("PublicKey", "") or "unknown"
    raise InputError(f"{where}: unsupported key type {kind}; kube-apiserver signs with RSA or ECDSA keys")

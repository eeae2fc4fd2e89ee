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

import base64
import re
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import PublicKeyAlgorithmOID

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
# cryptography deprecates DSA and warns whenever it loads a DSA key, so a DSA key is refused from the
# algorithm identifier of its SubjectPublicKeyInfo, PKCS#8 block or certificate, before any loading.
_DSA_OID_DER = bytes.fromhex("06072a8648ce380401")  # id-dsa, 1.2.840.10040.4.1 (RFC 3279)


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
    if _is_dsa(label, block):
        raise _unsupported("DSA", where)
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
    raise _unsupported(kind, where)


def _unsupported(kind: str, where: str) -> InputError:
    return InputError(f"{where}: unsupported key type {kind}; kube-apiserver signs with RSA or ECDSA keys")


def _is_dsa(label: bytes, block: bytes) -> bool:
    if label == _CERTIFICATE_LABEL:
        try:
            return x509.load_pem_x509_certificate(block).public_key_algorithm_oid == PublicKeyAlgorithmOID.DSA
        except ValueError:
            return False  # reported by _parse_block
    return label in (b"PUBLIC KEY", b"PRIVATE KEY") and _algorithm_der(block, label == b"PRIVATE KEY") == _DSA_OID_DER


def _algorithm_der(block: bytes, pkcs8: bool) -> bytes:
    """The algorithm OID (as DER) of a SubjectPublicKeyInfo or PKCS#8 PEM block; b"" if unreadable."""
    try:
        der = base64.b64decode(b"".join(block.splitlines()[1:-1]), validate=True)
        at = _der_content(der, 0)  # SubjectPublicKeyInfo / PrivateKeyInfo SEQUENCE
        if pkcs8:
            at = _der_content(der, at, end=True)  # past the version INTEGER
        at = _der_content(der, at)  # AlgorithmIdentifier SEQUENCE: its first element is the OID
        return der[at : _der_content(der, at, end=True)]
    except (ValueError, IndexError):
        return b""


def _der_content(der: bytes, at: int, end: bool = False) -> int:
    """Where the content of the DER element at ``at`` starts (``end``: where the element ends)."""
    length, at = der[at + 1], at + 2
    if length & 0x80:
        size = length & 0x7F
        length, at = int.from_bytes(der[at : at + size]), at + size
    return at + length if end else at

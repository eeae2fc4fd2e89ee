"""``irsa-webhook certs`` (webhook.server.devcerts) writes private keys so that no other user can ever read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509

from webhook.server import devcerts


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_key_replaces_a_world_readable_one_instead_of_writing_into_it(tmp_path: Path) -> None:
    first = devcerts.generate(tmp_path)
    first.key.chmod(0o644)  # left readable by someone, or restored from a backup
    old_inode = first.key.stat().st_ino
    old_key = first.key.read_bytes()
    # Another user holding the old file open, with read access granted by 0644, must never see the new key.
    with first.key.open("rb") as other_reader:
        again = devcerts.generate(tmp_path)
        assert other_reader.read() == old_key
    assert again.key.stat().st_ino != old_inode  # a new file, renamed into place
    assert mode(again.key) == 0o600
    assert again.key.read_bytes() != old_key
    assert mode(again.ca_key) == 0o600


def test_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        files = devcerts.generate(tmp_path / "strict")
    finally:
        os.umask(previous)
    assert mode(files.cert) == 0o644  # published material stays readable under a strict umask
    assert mode(files.ca_cert) == 0o644
    assert mode(files.key) == 0o600
    previous = os.umask(0)
    try:
        files = devcerts.generate(tmp_path / "lax")
    finally:
        os.umask(previous)
    assert mode(files.key) == 0o600
    assert mode(files.ca_key) == 0o600


def test_no_temporary_files_left_behind(tmp_path: Path) -> None:
    devcerts.generate(tmp_path)
    devcerts.generate(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca-bundle.b64", "ca.crt", "ca.key", "tls.crt", "tls.key"]


def test_a_planted_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    devcerts.generate(tmp_path / "certs")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"not a key")
    elsewhere.chmod(0o644)
    key = tmp_path / "certs" / "tls.key"
    key.unlink()
    key.symlink_to(elsewhere)
    devcerts.generate(tmp_path / "certs")
    assert elsewhere.read_bytes() == b"not a key"
    assert not key.is_symlink()
    assert mode(key) == 0o600


@pytest.mark.parametrize("days", [1, 30])
def test_issue_signs_with_the_existing_ca(tmp_path: Path, days: int) -> None:
    files = devcerts.generate(tmp_path)
    ca_cert, ca_key = devcerts.load_ca(tmp_path)
    cert_pem, key_pem = devcerts.issue(ca_cert, ca_key, days=days)
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(files.ca_cert.read_bytes()))
    assert b"PRIVATE KEY" in key_pem
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == days

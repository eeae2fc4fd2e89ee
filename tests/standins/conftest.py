"""The stand-ins wired as a test of the AWS side uses them: the session's moto server (tests/conftest.py, reset
before each test), and per test a public S3 front, a verifying STS, a call recorder and a published
issuer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.standins import CallRecorder, ManualIssuer, MotoServer, PublicS3, SigningKey, VerifyingSTS


@pytest.fixture
def front(moto: MotoServer, tmp_path: Path) -> Iterator[PublicS3]:
    with PublicS3(moto.url, tmp_path) as running:
        yield running


@pytest.fixture
def sts(moto: MotoServer, front: PublicS3) -> Iterator[VerifyingSTS]:
    with VerifyingSTS(moto.url, ca_file=front.ca_file) as running:
        yield running


@pytest.fixture
def recorder(moto: MotoServer) -> Iterator[CallRecorder]:
    with CallRecorder(moto.url) as running:
        yield running


@pytest.fixture(scope="session")
def signer() -> SigningKey:
    return SigningKey.generate("rsa")


@pytest.fixture(scope="session")
def other_key() -> SigningKey:
    return SigningKey.generate("rsa")


@pytest.fixture
def issuer(moto: MotoServer, front: PublicS3, signer: SigningKey) -> ManualIssuer:
    """An issuer published by hand behind ``front``, signing with ``signer``, with its IAM OIDC provider."""
    return ManualIssuer(moto.url, front).setup([signer])

"""The fixed test keys of ``tests/oidc/testdata/`` (how they were made: its README.md) and their kids,
computed with openssl alone, never with the code under test."""

from __future__ import annotations

from .paths import TESTS

TESTDATA = TESTS / "oidc" / "testdata"

RSA_KID = "zwnicl0wCvyQiGpcTLKnGckMtOBKYlYLLUoxsSmvThM"
EC_KID = "6_Cge9e_ycElEty8ENjzQ_e3zsxPJHPaVm_ZuyIxKQA"

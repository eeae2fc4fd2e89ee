"""The fixed test keys of ``testdata/`` (how they were made: testdata/README.md) and their kids,
computed with openssl alone, never with the code under test."""

from __future__ import annotations

from pathlib import Path

TESTDATA = Path(__file__).parent / "testdata"

RSA_KID = "zwnicl0wCvyQiGpcTLKnGckMtOBKYlYLLUoxsSmvThM"
EC_KID = "6_Cge9e_ycElEty8ENjzQ_e3zsxPJHPaVm_ZuyIxKQA"

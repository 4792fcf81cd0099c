"""Fixtures of the evidence tests: the real moto server (shared with the AWS adapter tests'
definitions) and OpenBao (tests/adapters/conftest.py)."""

from __future__ import annotations

from tests.adapters.aws.conftest import moto, moto_url

__all__ = ["moto", "moto_url"]

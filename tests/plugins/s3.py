"""Fixtures: a real moto S3 server on a free loopback port (server mode, not in-process patching)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from sandbox import MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer.running() as server:
        yield server


@pytest.fixture
def s3_bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket on the moto server, with the environment pointing boto3 at it."""
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    name = f"test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    yield name

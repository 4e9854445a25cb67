"""The Fernet key can live in a Prefect Secret block instead of the environment."""

from __future__ import annotations

from prefect.blocks.system import Secret

from ledger import generate_key
from tasks import runtime
from tiktok_pipeline.settings import load_settings


def test_encryption_key_comes_from_the_secret_block_and_is_read_once(monkeypatch) -> None:
    key = generate_key()
    Secret(value=key).save(runtime.ENCRYPTION_KEY_BLOCK, overwrite=True)
    monkeypatch.delenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", raising=False)
    monkeypatch.setattr(runtime, "_block_key", [])
    assert runtime.encryption_key(load_settings()) == key

    loads: list[str] = []
    monkeypatch.setattr(Secret, "load", classmethod(lambda cls, name, **kw: loads.append(name)))
    assert runtime.encryption_key(load_settings()) == key and loads == []  # cached: no second API call
    monkeypatch.setenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", generate_key())
    assert runtime.encryption_key(load_settings()) != key  # the setting wins over the block

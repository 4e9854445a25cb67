"""Encryption of tokens at rest (Fernet; several keys = rotation with MultiFernet)."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ledger._errors import EncryptionKeyInvalid, EncryptionKeyMissing

KEY_ENV_VAR = "TIKTOK_PIPELINE_ENCRYPTION_KEY"


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def parse_keys(keys: str | Sequence[str] | None) -> list[str]:
    """Keys from a comma-separated string (the setting) or a sequence; the first one encrypts."""
    if keys is None:
        return []
    parts = keys.split(",") if isinstance(keys, str) else list(keys)
    return [k.strip() for k in parts if k.strip()]


class TokenCipher:
    """Encrypts with the first key, decrypts with any of them."""

    def __init__(self, keys: str | Sequence[str] | None) -> None:
        fernets = []
        for position, key in enumerate(parse_keys(keys), start=1):
            try:
                fernets.append(Fernet(key))
            except ValueError as exc:
                raise EncryptionKeyInvalid(
                    f"{KEY_ENV_VAR} key #{position} is not a Fernet key (32 url-safe base64-encoded bytes); "
                    "generate one with `tiktok-pipeline db generate-key`",
                    detail={"key_position": position},
                ) from exc
        self._fernet = MultiFernet(fernets) if fernets else None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise EncryptionKeyMissing(
                f"{KEY_ENV_VAR} is not set; generate one with `tiktok-pipeline db generate-key` "
                "and set it in the environment (or .env) of every process that uses the ledger"
            )
        return self._fernet

    def encrypt(self, plaintext: str) -> str:
        return self._require().encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str, *, account_name: str) -> str:
        try:
            return self._require().decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise self._wrong_key(account_name) from exc

    def rotate(self, ciphertext: str, *, account_name: str) -> str:
        """Re-encrypt with the first key (so older keys can be retired)."""
        try:
            return self._require().rotate(ciphertext.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise self._wrong_key(account_name) from exc

    @staticmethod
    def _wrong_key(account_name: str) -> EncryptionKeyInvalid:
        return EncryptionKeyInvalid(
            f"the tokens of account {account_name!r} cannot be decrypted with {KEY_ENV_VAR}: it is not the "
            "key they were stored with. Restore that key; to rotate, list the new key first and the old one "
            "after it, comma-separated, then run `tiktok-pipeline db reencrypt-tokens`",
            detail={"account_name": account_name},
        )

"""API keys (stored as SHA-256 only) and encrypted account keystores (eth-account V3, scrypt)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading

from eth_account import Account

from api.caches import BoundedCache

API_KEY_PREFIX = "tlk_"


def generate_api_key() -> str:
    """A new random API key: ``tlk_`` + 43 url-safe characters (256 bits)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    """Hex SHA-256 (64 chars) of an API key; the only form that is stored."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def tokens_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def new_account_keystore(passphrase: str, scrypt_n: int) -> tuple[str, str]:
    """Generate a secp256k1 key pair; returns ``(checksum address, keystore JSON text)``."""
    acct = Account.create()
    keystore = Account.encrypt(acct.key, passphrase, kdf="scrypt", iterations=scrypt_n)
    return acct.address, json.dumps(keystore, sort_keys=True)


class KeyCache:
    """Decrypted private keys by keystore address (and by keystore text, to skip parsing), so scrypt runs once
    per key per process."""

    def __init__(self, maxsize: int = 4096) -> None:
        self._keys: BoundedCache[bytes] = BoundedCache("decrypted_keys", maxsize)  # LRU: api/caches.py
        self._lock = threading.Lock()

    def private_key(self, keystore_json: str, passphrase: str) -> bytes:
        """The 32-byte private key of ``keystore_json`` (raises ValueError on a wrong passphrase)."""
        with self._lock:
            cached = self._keys.get(keystore_json)  # hot path: no JSON parsing per request
        if cached is not None:
            return cached
        address = json.loads(keystore_json).get("address", "").lower()
        with self._lock:
            cached = self._keys.get(address)
        if cached is not None:
            with self._lock:
                self._keys[keystore_json] = cached
            return cached
        key = bytes(Account.decrypt(keystore_json, passphrase))
        with self._lock:
            self._keys[address] = key
            self._keys[keystore_json] = key
        return key

"""Runtime configuration (pydantic-settings), read from the environment.

Environment variables (all optional):

* ``DATABASE_URL`` -- SQLAlchemy URL; default ``sqlite:///<data_dir>/api.db``. ``postgresql://`` is
  normalised to ``postgresql+psycopg://`` (psycopg 3).
* ``TRACELEDGER_DATA_DIR`` -- directory for the SQLite file and other state (default ``./data``).
* ``TRACELEDGER_ENV`` -- ``development`` (default) or ``production``; outside development the
  keystore passphrase must be set explicitly.
* ``TRACELEDGER_RPC_URL`` -- JSON-RPC endpoint of the chain (HTTP).
* ``TRACELEDGER_RPC_URLS`` -- comma-separated JSON-RPC endpoints of every validator, shown on
  ``/dashboard`` (read there from the environment; ``network up`` sets it). When set, the chain client and
  the anchoring worker use them all with failover (:mod:`api.rpc_failover`); ``TRACELEDGER_RPC_URL`` is then
  only the fallback when the list is empty.
* ``TRACELEDGER_ADMIN_TOKEN`` -- bearer token for governance endpoints (``POST /v1/enterprises``).
* ``TRACELEDGER_ADMIN_KEY`` -- hex private key of the governance account (registry admin, funder).
* ``TRACELEDGER_ENTERPRISE_REGISTRY`` / ``TRACELEDGER_ANCHOR_REGISTRY`` -- contract addresses.
* ``TRACELEDGER_WORK_TICKET`` / ``TRACELEDGER_RECEIVABLE_TOKEN`` / ``TRACELEDGER_WAREHOUSE_RECEIPT`` -- WorkTicket,
  ReceivableToken and WarehouseReceipt
  contract addresses (the work-ticket and receivable endpoints answer 503 without them).
* ``TRACELEDGER_PRICE_INDEX`` -- PriceIndex contract address (``/v1/price-index`` answers 503 without it).
* ``TRACELEDGER_PERSON_FUND_WEI`` -- gas money an enterprise sends each new person account (1 ether).
* ``TRACELEDGER_KEYSTORE_PASSPHRASE`` -- passphrase of the encrypted enterprise keystores.
* ``TRACELEDGER_KEYSTORE_SCRYPT_N`` -- scrypt cost of new keystores (default 2**14, see below).
* ``TRACELEDGER_PUBLIC_BASE_URL`` (old name ``PUBLIC_BASE_URL``, still read) -- base of the URLs
  encoded in QR codes and shown on ``/id/…`` pages (default ``http://127.0.0.1:8000``). On a plant
  network set it to the address phones and other hosts reach the API at, e.g.
  ``http://10.20.0.5:8000``; the API logs a warning at start while it is a loopback address.
* ``TRACELEDGER_ANCHOR_INTERVAL_S`` (1.0), ``TRACELEDGER_ANCHOR_MAX_BATCH`` (1000),
  ``TRACELEDGER_ANCHORING_ENABLED`` (true), ``TRACELEDGER_BOOTSTRAP_ENABLED`` (true),
  ``TRACELEDGER_ANCHOR_PIPELINE_DEPTH`` (4 anchor transactions in flight at once).
* ``TRACELEDGER_CHAIN_ID`` -- EIP-155 chain id; read from the RPC when absent.
* ``TRACELEDGER_FUND_WEI`` -- amount sent to each new enterprise account (default 1000 ether).
* ``TRACELEDGER_MAX_BODY_BYTES`` (1 MiB), ``TRACELEDGER_JSON_MAX_DEPTH`` (32),
  ``TRACELEDGER_JSON_MAX_STRING_CHARS`` (65,536), ``TRACELEDGER_JSON_MAX_ARRAY_ITEMS`` (100,000) --
  limits of the strict JSON reader in front of every write (``api/json_reader.py``).
* ``TRACELEDGER_QR_CACHE_ENTRIES`` (10,000 images), ``TRACELEDGER_SEAL_CACHE_ENTRIES`` (100,000 verdicts),
  ``TRACELEDGER_ANCHOR_CACHE_ENTRIES`` (100,000 anchors), ``TRACELEDGER_KEY_CACHE_ENTRIES`` (4,096 keys) --
  LRU bounds of the in-process caches (``api/caches.py``; hit/miss/eviction counters at ``/metrics``).
* ``TRACELEDGER_WRITE_RATE_LIMIT`` -- writes per API key (``limits`` notation, default
  ``300/second``; empty disables): 429 with ``Retry-After`` (``api/rate_limits.py``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PASSPHRASE = "traceledger-development-only"
"""Default keystore passphrase, accepted only when ``environment == "development"``."""


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """API configuration. Field docs name the environment variable that sets each value."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    environment: Literal["development", "production"] = Field(
        "development", validation_alias=_env("TRACELEDGER_ENV", "environment")
    )
    data_dir: Path = Field(Path("./data"), validation_alias=_env("TRACELEDGER_DATA_DIR", "data_dir"))
    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL", "database_url"))
    rpc_url: str | None = Field(None, validation_alias=_env("TRACELEDGER_RPC_URL", "rpc_url"))
    #: every validator's JSON-RPC URL, comma-separated (``network up`` sets it; listed by ``GET /v1/network``)
    rpc_urls: str | None = Field(None, validation_alias=_env("TRACELEDGER_RPC_URLS", "rpc_urls"))
    #: how an anchoring block is taken as final: ``qbft`` (a quorum of commit seals, our validators and Besu) or
    #: ``confirmations:N`` for chains without seals (ganache, a public L2): N blocks, the anchor's included
    finality: str = Field("qbft", validation_alias=_env("TRACELEDGER_FINALITY", "finality"))
    #: the network's crypto profile (``standard`` SHA-256 / EIP-712, or ``sm`` SM3 / SM2), fixed when the network
    #: is created and written in its ``network.json`` (``network up`` sets it; see :mod:`provenance.crypto_profile`)
    crypto_profile: str = Field("standard", validation_alias=_env("TRACELEDGER_CRYPTO_PROFILE", "crypto_profile"))
    admin_token: str | None = Field(None, validation_alias=_env("TRACELEDGER_ADMIN_TOKEN", "admin_token"))
    admin_private_key: str | None = Field(None, validation_alias=_env("TRACELEDGER_ADMIN_KEY", "admin_private_key"))
    enterprise_registry_address: str | None = Field(
        None, validation_alias=_env("TRACELEDGER_ENTERPRISE_REGISTRY", "enterprise_registry_address")
    )
    anchor_registry_address: str | None = Field(
        None, validation_alias=_env("TRACELEDGER_ANCHOR_REGISTRY", "anchor_registry_address")
    )
    work_ticket_address: str | None = Field(
        None, validation_alias=_env("TRACELEDGER_WORK_TICKET", "work_ticket_address")
    )
    receivable_token_address: str | None = Field(
        None, validation_alias=_env("TRACELEDGER_RECEIVABLE_TOKEN", "receivable_token_address")
    )
    warehouse_receipt_address: str | None = Field(
        None, validation_alias=_env("TRACELEDGER_WAREHOUSE_RECEIPT", "warehouse_receipt_address")
    )
    price_index_address: str | None = Field(
        None, validation_alias=_env("TRACELEDGER_PRICE_INDEX", "price_index_address")
    )
    person_fund_wei: int = Field(10**18, ge=0, validation_alias=_env("TRACELEDGER_PERSON_FUND_WEI", "person_fund_wei"))
    keystore_passphrase: str = Field(
        DEV_PASSPHRASE, validation_alias=_env("TRACELEDGER_KEYSTORE_PASSPHRASE", "keystore_passphrase")
    )
    # scrypt n = 2**14 (r=8, p=1): 16 MiB and ~50 ms per decryption. eth-account's default 2**18
    # costs ~1 s and 256 MiB, too slow for an API that unlocks a key at first use after each
    # restart for every enterprise. The keystores sit in our own database (not on a laptop disk),
    # so scrypt only has to make an offline guess of a strong passphrase uneconomic, which 2**14
    # still does; raise it in production if unlock latency does not matter.
    keystore_scrypt_n: int = Field(2**14, validation_alias=_env("TRACELEDGER_KEYSTORE_SCRYPT_N", "keystore_scrypt_n"))
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        validation_alias=_env("TRACELEDGER_PUBLIC_BASE_URL", "PUBLIC_BASE_URL", "public_base_url"),
    )
    anchor_interval_s: float = Field(
        1.0, gt=0, validation_alias=_env("TRACELEDGER_ANCHOR_INTERVAL_S", "anchor_interval_s")
    )
    anchor_max_batch: int = Field(1000, ge=1, validation_alias=_env("TRACELEDGER_ANCHOR_MAX_BATCH", "anchor_max_batch"))
    anchoring_enabled: bool = Field(True, validation_alias=_env("TRACELEDGER_ANCHORING_ENABLED", "anchoring_enabled"))
    #: anchor transactions in flight at once (pipelined anchoring; 1 = wait for each receipt)
    anchor_pipeline_depth: int = Field(
        4, ge=1, le=64, validation_alias=_env("TRACELEDGER_ANCHOR_PIPELINE_DEPTH", "anchor_pipeline_depth"))
    bootstrap_enabled: bool = Field(True, validation_alias=_env("TRACELEDGER_BOOTSTRAP_ENABLED", "bootstrap_enabled"))
    chain_id: int | None = Field(None, validation_alias=_env("TRACELEDGER_CHAIN_ID", "chain_id"))
    #: wei sent to each newly registered account; unset = what the admin can afford (at most 1,000 ether,
    #: at most 1/20 of the admin's balance: ``ChainClient.affordable_funding``)
    fund_wei: int | None = Field(None, ge=0, validation_alias=_env("TRACELEDGER_FUND_WEI", "fund_wei"))
    rpc_timeout_s: float = Field(10.0, gt=0, validation_alias=_env("TRACELEDGER_RPC_TIMEOUT_S", "rpc_timeout_s"))
    receipt_timeout_s: float = Field(
        60.0, gt=0, validation_alias=_env("TRACELEDGER_RECEIPT_TIMEOUT_S", "receipt_timeout_s")
    )

    # Input limits of the strict JSON reader (api/json_reader.py; README "Input limits")
    max_body_bytes: int = Field(
        1024 * 1024, ge=1, validation_alias=_env("TRACELEDGER_MAX_BODY_BYTES", "max_body_bytes"))
    json_max_depth: int = Field(32, ge=2, le=256, validation_alias=_env("TRACELEDGER_JSON_MAX_DEPTH", "json_max_depth"))
    json_max_string_chars: int = Field(
        65_536, ge=1, validation_alias=_env("TRACELEDGER_JSON_MAX_STRING_CHARS", "json_max_string_chars"))
    json_max_array_items: int = Field(
        100_000, ge=1, validation_alias=_env("TRACELEDGER_JSON_MAX_ARRAY_ITEMS", "json_max_array_items"))
    write_rate_limit: str = Field(
        "300/second", validation_alias=_env("TRACELEDGER_WRITE_RATE_LIMIT", "write_rate_limit"))
    # Bounded in-process caches (api/caches.py): entries, LRU eviction
    qr_cache_entries: int = Field(
        10_000, ge=1, validation_alias=_env("TRACELEDGER_QR_CACHE_ENTRIES", "qr_cache_entries"))
    seal_cache_entries: int = Field(
        100_000, ge=1, validation_alias=_env("TRACELEDGER_SEAL_CACHE_ENTRIES", "seal_cache_entries"))
    anchor_cache_entries: int = Field(
        100_000, ge=1, validation_alias=_env("TRACELEDGER_ANCHOR_CACHE_ENTRIES", "anchor_cache_entries"))
    key_cache_entries: int = Field(
        4096, ge=1, validation_alias=_env("TRACELEDGER_KEY_CACHE_ENTRIES", "key_cache_entries"))
    # Chain-event indexer (api/chain_index): runs beside the anchoring worker, in the lease holder
    chain_index_enabled: bool = Field(
        True, validation_alias=_env("TRACELEDGER_CHAIN_INDEX_ENABLED", "chain_index_enabled"))
    chain_index_batch_blocks: int = Field(
        1000, ge=1, le=5000, validation_alias=_env("TRACELEDGER_CHAIN_INDEX_BATCH_BLOCKS", "chain_index_batch_blocks"))
    chain_index_poll_s: float = Field(
        0.5, gt=0, validation_alias=_env("TRACELEDGER_CHAIN_INDEX_POLL_S", "chain_index_poll_s"))
    chain_index_start_block: int = Field(
        0, ge=0, validation_alias=_env("TRACELEDGER_CHAIN_INDEX_START_BLOCK", "chain_index_start_block"))
    # Answers of anchored records served from memory (api/read_cache.py): entries, max age, invalidation poll
    read_cache_entries: int = Field(
        20_000, ge=1, validation_alias=_env("TRACELEDGER_READ_CACHE_ENTRIES", "read_cache_entries"))
    read_cache_ttl_s: float = Field(
        300.0, gt=0, validation_alias=_env("TRACELEDGER_READ_CACHE_TTL_S", "read_cache_ttl_s"))
    read_cache_poll_s: float = Field(
        0.5, gt=0, validation_alias=_env("TRACELEDGER_READ_CACHE_POLL_S", "read_cache_poll_s"))
    # Single POSTs share durable commits (api/group_commit.py). Unset: on for SQLite (an fsync per commit, one
    # writer), off for PostgreSQL (the server already shares WAL flushes; measured slower there, see README)
    group_commit: bool | None = Field(None, validation_alias=_env("TRACELEDGER_GROUP_COMMIT", "group_commit"))

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.environment != "development" and self.keystore_passphrase == DEV_PASSPHRASE:
            raise ValueError(
                "TRACELEDGER_KEYSTORE_PASSPHRASE must be set outside development "
                "(the built-in default passphrase is for development only)"
            )
        if self.keystore_scrypt_n < 2 or self.keystore_scrypt_n & (self.keystore_scrypt_n - 1):
            raise ValueError("TRACELEDGER_KEYSTORE_SCRYPT_N must be a power of two >= 2")
        self.public_base_url = self.public_base_url.rstrip("/")
        from provenance.verify import parse_finality_model

        parse_finality_model(self.finality)  # ValueError naming TRACELEDGER_FINALITY's accepted forms
        from provenance.crypto_profile import get_profile

        get_profile(self.crypto_profile)  # ValueError naming the known profiles (TRACELEDGER_CRYPTO_PROFILE)
        return self

    @property
    def hash_alg(self) -> str:
        """``hash_alg`` of the network's crypto profile: ``"sha-256"`` or ``"sm3"``."""
        from provenance.crypto_profile import get_profile

        return get_profile(self.crypto_profile).hash_alg

    @property
    def sqlalchemy_url(self) -> str:
        """The effective SQLAlchemy URL (psycopg 3 driver for PostgreSQL)."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'api.db').as_posix()}"
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+psycopg://" + url[len(plain) :]
        return url

    @property
    def rpc_endpoints(self) -> list[str]:
        """JSON-RPC endpoints the chain client uses, in order: ``TRACELEDGER_RPC_URLS`` (comma-separated), else
        ``[TRACELEDGER_RPC_URL]``, else ``[]``."""
        from api.rpc_failover import parse_rpc_urls

        return parse_rpc_urls(self.rpc_urls, self.rpc_url)

    @property
    def chain_configured(self) -> bool:
        """True when an RPC URL and both registry addresses are configured."""
        return bool(self.rpc_endpoints and self.enterprise_registry_address and self.anchor_registry_address)


def loopback_base_url_warning(public_base_url: str) -> str | None:
    """The start-up warning when ``public_base_url`` (``Settings.public_base_url``) names a loopback host
    (QR codes then open only on this machine), else None."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(public_base_url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return None
    return (f"TRACELEDGER_PUBLIC_BASE_URL is {public_base_url.rstrip('/')}: QR codes and /id links open only on "
            "this machine; on a plant network set it to the address other hosts reach the API at "
            "(e.g. http://10.20.0.5:8000)")


@lru_cache
def get_settings() -> Settings:
    """Process-wide settings read from the environment (cached)."""
    return Settings()

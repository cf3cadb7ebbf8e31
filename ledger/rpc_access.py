"""Least privilege on a node's JSON-RPC: public methods for anyone, admin methods only for the operator.

Hyperledger Besu is the anchor: its ``--rpc-http-authentication-enabled`` JWTs carry a ``permissions``
claim of ``namespace:method`` entries (``*:*``, ``qbft:*``, ``admin:peers``), its ``--host-allowlist``
and ``--rpc-http-cors-origins`` bound who may call at all, and the admin APIs are not served unless asked.

* **Public** methods: ``eth_*``, ``net_*``, ``web3_*`` and the read-only chain fact
  ``qbft_getValidatorsByBlockNumber`` (what verification needs). Everybody who reaches the listener.
* **Admin** methods: everything else -- ``qbft_proposeValidatorVote`` / ``qbft_discardValidatorVote`` /
  ``qbft_getPendingVotes`` (governance votes and their state) and ``admin_*`` (peer management, node
  info). Served to a caller that presents ``Authorization: Bearer <JWT>`` signed with HS256 by the node's
  secret (``rpc.jwt_secret_file``, ≥ 32 bytes, hex; RFC 7518 §3.2) with ``exp`` and ``iat`` and a
  ``permissions`` claim covering the method, or without a token on a listener that only this machine
  reaches:

  ======================================== ==================================================================
  listener                                 admin methods without a token
  ======================================== ==================================================================
  ``rpc.admin`` bound to loopback          yes (the operator's own machine; the default of ``node init``)
  ``rpc.admin`` on another address         no (refused at start when no JWT secret is configured)
  ``rpc`` (public), with ``rpc.admin`` or  no
  a JWT secret configured
  ``rpc`` on loopback, neither configured  yes: the single-machine ``network up`` network, unchanged
  ======================================== ==================================================================

A token that is present but invalid (bad signature, expired, not HS256, no ``exp``/``iat``) refuses the
whole HTTP request with 401; an admin call without a token answers JSON-RPC error ``-40100``
("Unauthorized", Besu's code), a token without the method's permission too.
``host_allowlist`` (default ``["*"]``; ``node init`` writes localhost, 127.0.0.1 and the node's addresses)
is checked against the ``Host`` header (400 otherwise, Starlette's TrustedHostMiddleware);
``cors_origins`` (default none) are the browser origins allowed (Starlette's CORSMiddleware).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from ledger.consortium import is_loopback

#: JSON-RPC error code of an unauthorized call (Besu ``JsonRpcError.UNAUTHORIZED``).
UNAUTHORIZED = -40100
#: Prefixes of the methods every caller may use.
PUBLIC_PREFIXES = ("eth_", "net_", "web3_")
#: Read-only methods outside those namespaces that are public too.
PUBLIC_METHODS = frozenset({"qbft_getValidatorsByBlockNumber"})
#: Clock skew tolerated on ``exp`` / ``iat`` (seconds).
LEEWAY_S = 60
#: Shortest HS256 secret accepted (bytes; RFC 7518 §3.2).
MIN_SECRET_BYTES = 32


def is_public_method(method: str) -> bool:
    """Whether ``method`` is served to everybody (see the module docstring)."""
    return method.startswith(PUBLIC_PREFIXES) or method in PUBLIC_METHODS


def permits(permissions: Sequence[str], method: str) -> bool:
    """Besu's rule: ``permissions`` (``"*:*"``, ``"ns:*"``, ``"ns:method"``) cover ``ns_method``."""
    namespace, _, name = method.partition("_")
    wanted = {"*:*", f"{namespace}:*", f"{namespace}:{name}"}
    return any(p in wanted for p in permissions)


def read_secret(path: str | Path) -> bytes:
    """The HS256 secret from a file holding hex (``0x`` optional), as Besu's and the Engine API's
    ``jwtsecret`` files; raises ValueError when it is not hex or shorter than :data:`MIN_SECRET_BYTES`."""
    text = Path(path).read_text(encoding="utf-8").strip().removeprefix("0x")
    try:
        secret = bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"{path}: the JWT secret must be hex") from exc
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{path}: the JWT secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret


def make_token(secret: bytes, permissions: Sequence[str] = ("*:*",), ttl_s: int = 300) -> str:
    """An HS256 JWT for the admin methods: ``{permissions, iat: now, exp: now + ttl_s}`` (Besu's default
    lifetime is 5 minutes)."""
    now = int(time.time())
    return jwt.encode({"permissions": list(permissions), "iat": now, "exp": now + ttl_s}, secret, algorithm="HS256")


class TokenRefused(Exception):
    """An ``Authorization`` header that is present but not a valid token (the request gets 401)."""


@dataclass(frozen=True)
class RpcAccess:
    """One listener's access policy (see the module docstring)."""

    jwt_secret: bytes | None = None
    admin_without_token: bool = False
    host_allowlist: tuple[str, ...] = ("*",)
    cors_origins: tuple[str, ...] = ()
    listener: str = "rpc"

    @classmethod
    def from_config(cls, rpc_config: dict[str, Any] | None, *, admin_listener: bool = False) -> RpcAccess:
        """The policy of node.json's ``rpc`` listener (``admin_listener=False``) or of its ``rpc.admin`` one.

        Raises ValueError for an admin listener on a non-loopback address without ``jwt_secret_file``.
        """
        rpc_config = rpc_config or {}
        secret_file = rpc_config.get("jwt_secret_file")
        secret = read_secret(secret_file) if secret_file else None
        allowlist = tuple(rpc_config.get("host_allowlist") or ("*",))
        origins = tuple(rpc_config.get("cors_origins") or ())
        if admin_listener:
            admin = rpc_config["admin"]
            loopback = is_loopback(str(admin["host"]))
            if not loopback and secret is None:
                raise ValueError(f"rpc.admin listens on {admin['host']}, which other hosts reach: "
                                 "set rpc.jwt_secret_file or bind it to 127.0.0.1")
            hosts = allowlist if "*" in allowlist else tuple(sorted({*allowlist, str(admin["host"])}))
            return cls(secret, loopback, hosts, origins, "rpc.admin")
        legacy = rpc_config.get("admin") is None and secret is None and is_loopback(str(rpc_config.get("host", "")))
        return cls(secret, legacy, allowlist, origins, "rpc")

    def claims(self, authorization: str | None) -> dict[str, Any] | None:
        """The verified claims of an ``Authorization: Bearer`` header (``None`` when absent); raises
        TokenRefused for a malformed, badly signed or expired token, or when no secret is configured."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRefused("Authorization must be 'Bearer <JWT>'")
        if self.jwt_secret is None:
            raise TokenRefused("this node accepts no JWT (rpc.jwt_secret_file is not set)")
        try:
            claims = jwt.decode(token.strip(), self.jwt_secret, algorithms=["HS256"], leeway=LEEWAY_S,
                                options={"require": ["exp", "iat"]})
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"invalid token: {exc}") from exc
        if not isinstance(claims.get("permissions"), list):
            raise TokenRefused("invalid token: no 'permissions' list (Besu: e.g. [\"*:*\"])")
        return claims

    def refusal(self, method: Any, claims: dict[str, Any] | None) -> str | None:
        """``None`` when the caller may call ``method``; else the message of the -40100 error."""
        if not isinstance(method, str) or is_public_method(method):
            return None
        if claims is not None:
            if permits([str(p) for p in claims["permissions"]], method):
                return None
            return f"Unauthorized: the token's permissions do not cover {method}"
        if self.admin_without_token:
            return None
        return (f"Unauthorized: {method} is an admin method; call it on this node's admin listener (rpc.admin, "
                "loopback) or send 'Authorization: Bearer <JWT>' signed with the node's rpc.jwt_secret_file")

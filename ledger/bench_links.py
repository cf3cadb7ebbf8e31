"""Micro-benchmarks of the encrypted peer links (``ledger.transport``), for ``traceledger bench``.

Measured in one process on loopback: the cost of establishing a link (Noise XX handshake plus both
secp256k1-signed identities, both ends in this process) and of sealing and opening one frame
(ChaCha20-Poly1305 through ``noiseprotocol``) at two sizes: a consensus message and a sync batch chunk.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from eth_keys import keys
from noise.connection import Keypair, NoiseConnection

from ledger.transport import (
    KIND_CONSENSUS,
    NOISE_PROLOGUE,
    NOISE_PROTOCOL,
    LinkIdentity,
    frame,
    new_static_key,
    open_link,
)

CHAIN_ID = 1337


def _identity(port: int) -> LinkIdentity:
    key = keys.PrivateKey(os.urandom(32))
    return LinkIdentity(CHAIN_ID, key.public_key.to_canonical_address(),
                        lambda digest: key.sign_msg_hash(digest).to_bytes(), port, new_static_key())


async def _handshakes(seconds: float) -> float:
    """Mean seconds per established link (dial, Noise XX, identities both ways) on loopback."""
    listener, dialler = _identity(0), _identity(0)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await open_link(reader, writer, listener, dialler=False, allowed={dialler.address})
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    n, t0 = 0, time.perf_counter()
    try:
        while n == 0 or time.perf_counter() - t0 < seconds:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await open_link(reader, writer, dialler, dialler=True, allowed={listener.address},
                            expected=listener.address)
            writer.close()
            n += 1
    finally:
        server.close()
    return (time.perf_counter() - t0) / n


def _sealing(size: int, seconds: float) -> float:
    """Mean seconds to encrypt and decrypt one frame of ``size`` body bytes in an established Noise session."""
    pair = []
    for initiator in (True, False):
        c = NoiseConnection.from_name(NOISE_PROTOCOL)
        c.set_prologue(NOISE_PROLOGUE)
        c.set_keypair_from_private_bytes(Keypair.STATIC, new_static_key())
        c.set_as_initiator() if initiator else c.set_as_responder()
        c.start_handshake()
        pair.append(c)
    a, b = pair
    b.read_message(a.write_message())
    a.read_message(b.write_message())
    b.read_message(a.write_message())
    data = frame(KIND_CONSENSUS, os.urandom(size))
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < seconds:
        b.decrypt(a.encrypt(data))
        n += 1
    return (time.perf_counter() - t0) / n


def link_benchmarks(seconds: float = 1.0) -> dict[str, dict[str, Any]]:
    """``{operation: {us_per_op, ops_per_s}}`` for the peer-link rows of the benchmark report."""
    out: dict[str, dict[str, Any]] = {}
    rows = [
        ("peer link set-up: Noise XX + signed identities (loopback)", asyncio.run(_handshakes(seconds))),
        ("peer link frame of 300 bytes: seal + open (ChaCha20-Poly1305)", _sealing(300, seconds)),
        ("peer link frame of 60 KiB: seal + open (ChaCha20-Poly1305)", _sealing(60 * 1024, seconds)),
    ]
    for name, dt in rows:
        out[name] = {"us_per_op": dt * 1e6, "ops_per_s": 1 / dt}
    return out


if __name__ == "__main__":
    for name, m in link_benchmarks().items():
        print(f"{name}: {m['us_per_op']:.1f} µs, {m['ops_per_s']:,.0f}/s")

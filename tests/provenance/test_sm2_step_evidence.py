"""SM2 work-ticket step evidence and key-binding proofs against OpenSSL 3 as the device (issue 18).

A device that signs with ``openssl pkeyutl -sign -rawin -digest sm3 -pkeyopt distid:1234567812345678`` makes
signatures our verifier accepts (step statement and key-binding statement), and an auditor holding only OpenSSL
verifies an evidence document we produce (``openssl pkeyutl -verify``). Skipped, naming the reason, when the system
``openssl`` lacks SM2.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provenance.canonical import canonicalize
from provenance.crypto_profile import (
    sm2_generate_private_key,
    sm2_key_binding_statement,
    sm2_public_key,
    sm2_sign,
    sm2_verify,
)
from provenance.errors import InvalidSignature
from provenance.work_tickets import sm2_step_evidence, sm2_step_statement, verify_sm2_step_evidence
from tests.provenance.test_crypto_profile import _openssl_sm

OPTS = ["-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678"]
STATEMENT = sm2_step_statement(chain_id=1337, contract="0x" + "ab" * 20, ticket_id=7, step=1, action="permit",
                               person="0x" + "cd" * 20)


def _openssl_device(exe: str, tmp_path: Path) -> tuple[Path, bytes]:
    priv = tmp_path / "device.pem"
    subprocess.run([exe, "genpkey", "-algorithm", "SM2", "-out", str(priv)], check=True, capture_output=True)
    text = subprocess.run([exe, "pkey", "-in", str(priv), "-text", "-noout"], capture_output=True, text=True,
                          check=True).stdout
    pub = bytes.fromhex("".join(text.split("pub:")[1].split("ASN1 OID")[0].split()).replace(":", ""))
    return priv, pub


def _openssl_sign(exe: str, priv: Path, message: bytes, tmp_path: Path) -> bytes:
    (tmp_path / "msg").write_bytes(message)
    subprocess.run([exe, "pkeyutl", "-sign", "-inkey", str(priv), *OPTS, "-in", str(tmp_path / "msg"),
                    "-out", str(tmp_path / "sig")], check=True, capture_output=True)
    return (tmp_path / "sig").read_bytes()


def test_openssl_device_signs_a_step_and_a_key_binding(tmp_path: Path) -> None:
    exe = _openssl_sm()
    priv, pub = _openssl_device(exe, tmp_path)
    signature = _openssl_sign(exe, priv, canonicalize(STATEMENT), tmp_path)
    evidence = sm2_step_evidence(STATEMENT, signature, pub)
    assert verify_sm2_step_evidence(evidence) == STATEMENT
    for changed in ({"step": 2}, {"ticketId": 8}, {"chainId": 1}, {"action": "terminate"}):
        with pytest.raises(InvalidSignature):
            verify_sm2_step_evidence({**evidence, "statement": {**STATEMENT, **changed}})
    binding = sm2_key_binding_statement("0x" + "cd" * 20, 1337, "0x" + "ee" * 20)
    proof = _openssl_sign(exe, priv, binding, tmp_path)
    sm2_verify(pub, proof, binding)
    with pytest.raises(InvalidSignature):  # the same proof for another account
        sm2_verify(pub, proof, sm2_key_binding_statement("0x" + "cf" * 20, 1337, "0x" + "ee" * 20))


def test_auditor_with_openssl_verifies_our_step_evidence(tmp_path: Path) -> None:
    exe = _openssl_sm()
    from tongsuopy.crypto import serialization
    from tongsuopy.crypto.asymciphers import ec as t_ec

    key = sm2_generate_private_key()
    evidence = sm2_step_evidence(STATEMENT, sm2_sign(key, canonicalize(STATEMENT)), sm2_public_key(key))
    spki = t_ec.EllipticCurvePublicKey.from_encoded_point(
        t_ec.SM2(), bytes.fromhex(evidence["sm2_public_key"][2:])).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "pub.pem").write_bytes(spki)
    (tmp_path / "sig").write_bytes(bytes.fromhex(evidence["sm2_signature"][2:]))
    for statement, expected in ((evidence["statement"], 0), ({**evidence["statement"], "step": 2}, 1)):
        (tmp_path / "msg").write_bytes(canonicalize(statement))
        out = subprocess.run([exe, "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), *OPTS,
                              "-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig")],
                             capture_output=True, text=True)
        assert (out.returncode != 0) == bool(expected), out.stdout + out.stderr
        if not expected:
            assert "Verified Successfully" in out.stdout

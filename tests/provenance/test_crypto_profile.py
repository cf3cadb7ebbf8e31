"""The `sm` crypto profile against the standards' published examples and OpenSSL 3 as an independent implementation.

* SM3: GB/T 32905-2016 Appendix A, examples 1 ("abc") and 2 (the 64-byte message);
* SM2: GB/T 32918.2-2016 Annex A (the signature example on the standard's Fp-256 *test* curve, not the
  recommended curve: checked with gmalg, which accepts custom curve parameters and a fixed ``k``), and a
  cross-check that gmalg verifies Tongsuo's signatures on the recommended curve with the default user ID;
* OpenSSL 3: ``openssl dgst -sm3`` of canonical JSON and of Merkle node preimages; SM2 signatures made by
  ``openssl pkeyutl`` verified by us and ours verified by OpenSSL (skipped, with the reason, when the system
  ``openssl`` lacks SM2).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from provenance import merkle
from provenance.canonical import canonicalize, record_digest
from provenance.crypto_profile import (
    HASH_SHA256,
    HASH_SM3,
    SM2_DEFAULT_USER_ID,
    UnknownProfile,
    get_profile,
    hash_function,
    sign_record_sm2,
    sm2_generate_private_key,
    sm2_public_key,
    sm2_record_statement,
    sm2_sign,
    sm2_verify,
    sm3,
    verify_record_sm2,
)
from provenance.errors import InvalidSignature
from provenance.verify import Reason, check_hash_alg, check_inclusion, check_record_digest, check_record_signature_sm2


def h(text: str) -> int:
    return int(text.replace(" ", ""), 16)


# ------------------------------------------------------------------------------------------ SM3 vectors
def test_sm3_gbt32905_example_1_abc() -> None:
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_sm3_gbt32905_example_2_64_bytes() -> None:
    assert sm3(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


def test_profiles_name_their_algorithms_and_refuse_unknown_names() -> None:
    assert get_profile(None).hash_alg == HASH_SHA256 and get_profile("standard").hash_alg == HASH_SHA256
    assert get_profile("sm").hash_alg == HASH_SM3 and get_profile("sm").signature_alg == "sm2-sm3"
    for bad in ("SM", "gm", "sha3", 7):
        with pytest.raises(UnknownProfile):
            get_profile(bad)  # type: ignore[arg-type]
    with pytest.raises(UnknownProfile):
        hash_function("md5")


# ------------------------------------------------------------------------- the record layer under sm
def test_standard_outputs_are_unchanged_and_sm_differs() -> None:
    doc = {"b": 1, "a": "x"}
    import hashlib

    assert record_digest(doc) == hashlib.sha256(b'{"a":"x","b":1}').digest()
    assert record_digest(doc, HASH_SM3) == sm3(b'{"a":"x","b":1}')
    leaves = [bytes([i]) * 32 for i in range(5)]
    std = merkle.root_from_leaf_hashes([merkle.hash_leaf(x) for x in leaves])
    assert std == merkle.root_from_leaf_hashes([merkle.hash_leaf(x, HASH_SHA256) for x in leaves],
                                               hash_alg=HASH_SHA256)
    assert std != merkle.root_from_leaf_hashes([merkle.hash_leaf(x, HASH_SM3) for x in leaves], hash_alg=HASH_SM3)


def test_sm3_merkle_tree_keeps_rfc9162_structure_and_domain_separation() -> None:
    entries = [bytes([i]) * 32 for i in range(3)]
    leaf = [sm3(b"\x00" + e) for e in entries]
    assert [merkle.hash_leaf(e, HASH_SM3) for e in entries] == leaf
    want = sm3(b"\x01" + sm3(b"\x01" + leaf[0] + leaf[1]) + leaf[2])  # MTH of 3 leaves: split at k = 2
    assert merkle.root_from_leaf_hashes(leaf, hash_alg=HASH_SM3) == want
    assert merkle.hash_empty(HASH_SM3) == sm3(b"")
    for i in range(3):
        path = merkle.inclusion_proof(leaf, i, hash_alg=HASH_SM3)
        merkle.verify_inclusion(leaf[i], i, 3, path, want, hash_alg=HASH_SM3)
        assert check_inclusion(entries[i], i, 3, path, want, HASH_SM3).ok
        # the same proof read with the other profile's hash fails: the algorithm is never interchangeable
        assert not check_inclusion(entries[i], i, 3, path, want, HASH_SHA256).ok
    big = [sm3(bytes([i])) for i in range(11)]
    for old in (1, 4, 7, 11):
        proof = merkle.consistency_proof(big, old, hash_alg=HASH_SM3)
        merkle.verify_consistency(old, 11, merkle.root_from_leaf_hashes(big[:old], hash_alg=HASH_SM3),
                                  merkle.root_from_leaf_hashes(big, hash_alg=HASH_SM3), proof, hash_alg=HASH_SM3)


def test_record_digest_check_uses_the_declared_hash() -> None:
    doc = canonicalize({"coil": "C1"}).decode()
    d_sm3 = "0x" + sm3(doc.encode()).hex()
    assert check_record_digest(doc, d_sm3, HASH_SM3).ok
    assert check_record_digest(doc, d_sm3).reason is Reason.DIGEST_MISMATCH  # SHA-256 by default
    assert check_record_digest(doc, d_sm3, "sm4").reason is Reason.WRONG_ALGORITHM


def test_hash_alg_must_match_the_trusted_network() -> None:
    assert check_hash_alg("sm3", "sm3").ok
    assert check_hash_alg(None, "sha-256").ok  # bundles from before profiles: SHA-256 by rule
    # an SM3 network refuses a proof that declares SHA-256 or nothing (a downgrade), and vice versa
    for declared, network in (("sha-256", "sm3"), (None, "sm3"), ("sm3", "sha-256"), ("SM3", "sm3"), (3, "sm3")):
        v = check_hash_alg(declared, network)
        assert not v.ok and v.reason is Reason.WRONG_ALGORITHM, (declared, network)


# ----------------------------------------------------------------------------------------- SM2
ANNEX_A = {  # GB/T 32918.2-2016 Annex A, example 1 (Fp-256 test curve), also draft-shen-sm2-ecdsa-02 A.2
    "p": h("8542D69E 4C044F18 E8B92435 BF6FF7DE 45728391 5C45517D 722EDB8B 08F1DFC3"),
    "a": h("787968B4 FA32C3FD 2417842E 73BBFEFF 2F3C848B 6831D7E0 EC65228B 3937E498"),
    "b": h("63E4C6D3 B23B0C84 9CF84241 484BFE48 F61D59A5 B16BA06E 6E12D1DA 27C5249A"),
    "xG": h("421DEBD6 1B62EAB6 746434EB C3CC315E 32220B3B ADD50BDC 4C4E6C14 7FEDD43D"),
    "yG": h("0680512B CBB42C07 D47349D2 153B70C4 E5D7FDFC BFA36EA1 A85841B9 E46E09A2"),
    "n": h("8542D69E 4C044F18 E8B92435 BF6FF7DD 29772063 0485628D 5AE74EE7 C32E79B7"),
    "dA": h("128B2FA8 BD433C6C 068C8D80 3DFF7979 2A519A55 171B1B65 0C23661D 15897263"),
    "xA": h("0AE4C779 8AA0F119 471BEE11 825BE462 02BB79E2 A5844495 E97C04FF 4DF2548A"),
    "yA": h("7C0240F8 8F1CD4E1 6352A73C 17B7F16F 07353E53 A176D684 A9FE0C6B B798E857"),
    "ZA": "F4A38489 E32B45B6 F876E3AC 2168CA39 2362DC8F 23459C1D 1146FC3D BFB7BC9A",
    "k": h("6CB28D99 385C175C 94F94E93 4817663F C176D925 DD72B727 260DBAAE 1FB2F96F"),
    "r": h("40F1EC59 F793D9F4 9E09DCEF 49130D41 94F79FB1 EED2CAA5 5BACDB49 C4E755D1"),
    "s": h("6FC6DAC3 2C5D5CF1 0C77DFB2 0F7C2EB6 67A45787 2FB09EC5 6327A67E C7DEEBE7"),
}


def test_sm2_gbt32918_annex_a_signature_example() -> None:
    """The standard's example uses its own test curve and ID "ALICE123@YAHOO.COM": Tongsuo/OpenSSL only
    know the recommended curve, so gmalg (custom curve parameters, a fixed k) reproduces Z_A, r and s."""
    ec = pytest.importorskip("gmalg.ellipticcurve")
    from gmalg.sm2 import SM2Core
    from gmalg.sm3 import SM3

    v = ANNEX_A
    core = SM2Core(ec.ECDLP(v["p"], v["a"], v["b"], (v["xG"], v["yG"]), v["n"]), SM3(), rnd_fn=lambda bits: v["k"])
    pk = core.generate_pk(v["dA"])
    assert pk == (v["xA"], v["yA"])
    assert core.entity_info(b"ALICE123@YAHOO.COM", pk).hex() == v["ZA"].replace(" ", "").lower()
    assert core.sign(b"message digest", v["dA"], b"ALICE123@YAHOO.COM", pk) == (v["r"], v["s"])
    assert core.verify(b"message digest", v["r"], v["s"], b"ALICE123@YAHOO.COM", pk)
    assert not core.verify(b"message digesT", v["r"], v["s"], b"ALICE123@YAHOO.COM", pk)


def _der_to_rs(sig: bytes) -> tuple[int, int]:
    assert sig[0] == 0x30 and sig[2] == 0x02
    lr = sig[3]
    r = int.from_bytes(sig[4:4 + lr], "big")
    ls = sig[5 + lr]
    return r, int.from_bytes(sig[6 + lr:6 + lr + ls], "big")


def test_tongsuo_signatures_verify_in_gmalg_on_the_recommended_curve() -> None:
    """Two implementations agree on Z (default user ID 1234567812345678, GM/T 0009) and on the signature."""
    from gmalg.sm2 import SM2

    key = sm2_generate_private_key()
    pub = sm2_public_key(key)
    msg = sm2_record_statement("88.1.1/H1-C1", "coil_certificate", sm3(b"doc"), 1337)
    r, s = _der_to_rs(sign_record_sm2(key, "88.1.1/H1-C1", "coil_certificate", sm3(b"doc"), 1337))
    other = SM2(pk=pub, uid=SM2_DEFAULT_USER_ID)
    assert other.verify(msg, r.to_bytes(32, "big"), s.to_bytes(32, "big"))
    assert not other.verify(msg + b" ", r.to_bytes(32, "big"), s.to_bytes(32, "big"))


def test_sm2_forgeries_are_refused() -> None:
    key, other = sm2_generate_private_key(), sm2_generate_private_key()
    pub, other_pub = sm2_public_key(key), sm2_public_key(other)
    d = sm3(b"doc")
    sig = sign_record_sm2(key, "88.1.1/x", "coil", d, 1337)
    verify_record_sm2(pub, sig, "88.1.1/x", "coil", d, 1337)
    for args in (("88.1.1/y", "coil", d, 1337), ("88.1.1/x", "event", d, 1337), ("88.1.1/x", "coil", sm3(b"e"), 1337),
                 ("88.1.1/x", "coil", d, 1338)):
        with pytest.raises(InvalidSignature):
            verify_record_sm2(pub, sig, *args)
    with pytest.raises(InvalidSignature):
        verify_record_sm2(other_pub, sig, "88.1.1/x", "coil", d, 1337)
    for bad in (b"", sig[:-1], sig + b"\x00", b"\x31" + sig[1:], bytes(71)):
        with pytest.raises(InvalidSignature):
            sm2_verify(pub, bad, b"m")
    with pytest.raises(InvalidSignature):
        sm2_verify(b"\x04" + bytes(64), sm2_sign(key, b"m"), b"m")  # not a curve point
    v = check_record_signature_sm2(sig, "88.1.1/x", "coil", d, 1337, owner_keys=[other_pub])
    assert v.reason is Reason.WRONG_SIGNER
    assert check_record_signature_sm2(sig, "88.1.1/x", "coil", d, 1337, owner_keys=None).reason is \
        Reason.OWNER_UNPROVEN
    ok = check_record_signature_sm2("0x" + sig.hex(), "88.1.1/x", "coil", d, 1337, owner_keys=[other_pub, pub])
    assert ok.ok and ok.facts["signer_key"] == "0x" + pub.hex()
    with pytest.raises(ValueError):
        sm2_public_key(bytes(32))


# ------------------------------------------------------------------------------------------ OpenSSL 3
def _openssl_sm() -> str:
    exe = shutil.which("openssl")
    if exe is None:
        pytest.skip("no openssl executable on PATH")
    out = subprocess.run([exe, "list", "-digest-algorithms"], capture_output=True, text=True).stdout
    if "SM3" not in out.upper():
        pytest.skip("the system openssl has no SM3")
    probe = subprocess.run([exe, "genpkey", "-algorithm", "SM2"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"the system openssl cannot make SM2 keys: {probe.stderr.strip()[:120]}")
    return exe


def test_openssl_dgst_sm3_equals_record_digest_and_tree_nodes(tmp_path: Path) -> None:
    exe = _openssl_sm()
    doc = {"Certificate": {"B07": "C-118734", "C00": "HK52791", "Value": 355.5}, "ä": [1, 2.5, True, None]}
    data = tmp_path / "doc.json"
    data.write_bytes(canonicalize(doc))
    out = subprocess.run([exe, "dgst", "-sm3", "-r", str(data)], capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == record_digest(doc, HASH_SM3).hex()
    leaf = tmp_path / "leaf.bin"
    leaf.write_bytes(b"\x00" + record_digest(doc, HASH_SM3))
    out = subprocess.run([exe, "dgst", "-sm3", "-r", str(leaf)], capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == merkle.hash_leaf(record_digest(doc, HASH_SM3), HASH_SM3).hex()


def test_openssl_pkeyutl_sm2_round_trips(tmp_path: Path) -> None:
    exe = _openssl_sm()
    opts = ["-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678"]
    # OpenSSL signs, we verify
    priv = tmp_path / "sm2.pem"
    subprocess.run([exe, "genpkey", "-algorithm", "SM2", "-out", str(priv)], check=True, capture_output=True)
    text = subprocess.run([exe, "pkey", "-in", str(priv), "-text", "-noout"], capture_output=True, text=True,
                          check=True).stdout
    pub_hex = "".join(text.split("pub:")[1].split("ASN1 OID")[0].split()).replace(":", "")
    pub = bytes.fromhex(pub_hex)
    msg = sm2_record_statement("88.1.1/H1-C1", "coil_certificate", sm3(b"doc"), 1337)
    (tmp_path / "msg").write_bytes(msg)
    subprocess.run([exe, "pkeyutl", "-sign", "-inkey", str(priv), *opts, "-in", str(tmp_path / "msg"),
                    "-out", str(tmp_path / "osig")], check=True, capture_output=True)
    osig = (tmp_path / "osig").read_bytes()
    verify_record_sm2(pub, osig, "88.1.1/H1-C1", "coil_certificate", sm3(b"doc"), 1337)
    with pytest.raises(InvalidSignature):
        verify_record_sm2(pub, osig, "88.1.1/H1-C2", "coil_certificate", sm3(b"doc"), 1337)
    # we sign, OpenSSL verifies (and refuses a tampered message)
    from tongsuopy.crypto import serialization
    from tongsuopy.crypto.asymciphers import ec as t_ec

    key = sm2_generate_private_key()
    spki = t_ec.EllipticCurvePublicKey.from_encoded_point(t_ec.SM2(), sm2_public_key(key)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "pub.pem").write_bytes(spki)
    (tmp_path / "sig").write_bytes(sign_record_sm2(key, "88.1.1/H1-C1", "coil_certificate", sm3(b"doc"), 1337))
    ok = subprocess.run([exe, "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), *opts,
                         "-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig")],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "Verified Successfully" in ok.stdout, ok.stderr
    (tmp_path / "msg2").write_bytes(msg.replace(b"H1-C1", b"H1-C2"))
    bad = subprocess.run([exe, "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), *opts,
                          "-in", str(tmp_path / "msg2"), "-sigfile", str(tmp_path / "sig")], capture_output=True,
                         text=True)
    assert bad.returncode != 0

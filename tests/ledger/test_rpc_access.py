"""RPC least privilege (ledger/rpc_access.py): the attacks of a host that reaches a validator's public JSON-RPC."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from starlette.testclient import TestClient

from ledger.rpc import make_rpc_app
from ledger.rpc_access import UNAUTHORIZED, RpcAccess, is_public_method, make_token, permits

SECRET = bytes(range(32))
VOTES: list[list] = []


def _vote(ctx: object, params: list) -> bool:
    VOTES.append(params)
    return True


ADMIN = {"qbft_proposeValidatorVote": _vote, "qbft_getPendingVotes": lambda ctx, p: {"0xabc": True},
         "admin_peers": lambda ctx, p: [{"id": "0x1"}]}


def _secret_file(tmp_path: Path) -> str:
    path = tmp_path / "rpc-jwt.secret"
    path.write_text(SECRET.hex() + "\n")
    return str(path)


@pytest.fixture
def public(tmp_path: Path) -> TestClient:
    """The public listener of a consortium node: 0.0.0.0, an admin listener elsewhere, a JWT secret."""
    config = {"host": "0.0.0.0", "port": 8545, "jwt_secret_file": _secret_file(tmp_path),
              "host_allowlist": ["localhost", "testserver", "10.77.0.1"], "cors_origins": ["https://ops.example"],
              "admin": {"host": "127.0.0.1", "port": 8645}}
    VOTES.clear()
    return TestClient(make_rpc_app(None, ADMIN, access=RpcAccess.from_config(config)))  # type: ignore[arg-type]


def call(client: TestClient, method: str, params: list | None = None, token: str | None = None,
         **headers: str) -> tuple[int, dict]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    answer = client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []},
                         headers=headers)
    return answer.status_code, answer.json()


def test_method_classes() -> None:
    assert all(is_public_method(m) for m in ("eth_chainId", "net_version", "web3_clientVersion",
                                              "qbft_getValidatorsByBlockNumber"))
    assert not any(is_public_method(m) for m in ("qbft_proposeValidatorVote", "qbft_discardValidatorVote",
                                                  "qbft_getPendingVotes", "admin_addPeer", "admin_peers", "debug_x"))
    assert permits(["*:*"], "admin_peers") and permits(["qbft:*"], "qbft_getPendingVotes")
    assert permits(["qbft:proposeValidatorVote"], "qbft_proposeValidatorVote")
    assert not permits(["qbft:getPendingVotes"], "qbft_proposeValidatorVote") and not permits(["net:*"], "admin_peers")


def test_public_methods_need_no_token(public: TestClient) -> None:
    status, body = call(public, "web3_clientVersion")
    assert status == 200 and body["result"].startswith("traceledger/")


@pytest.mark.parametrize("method", ["qbft_proposeValidatorVote", "qbft_getPendingVotes", "admin_peers"])
def test_a_remote_host_without_credentials_cannot_vote_or_read_admin_state(public: TestClient, method: str) -> None:
    status, body = call(public, method, ["0x" + "11" * 20, True])
    assert status == 200 and body["error"]["code"] == UNAUTHORIZED and method in body["error"]["message"]
    assert "result" not in body and VOTES == []


def test_a_batch_cannot_smuggle_an_admin_call(public: TestClient) -> None:
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "web3_clientVersion"},
             {"jsonrpc": "2.0", "id": 2, "method": "qbft_proposeValidatorVote", "params": ["0x" + "11" * 20, True]},
             {"jsonrpc": "2.0", "method": "qbft_proposeValidatorVote", "params": ["0x" + "22" * 20, True]}]
    answers = public.post("/", json=batch).json()
    assert [a["id"] for a in answers] == [1, 2] and answers[1]["error"]["code"] == UNAUTHORIZED
    assert VOTES == []  # neither the call nor the notification was executed


def test_with_the_jwt_the_vote_is_queued(public: TestClient) -> None:
    status, body = call(public, "qbft_proposeValidatorVote", ["0x" + "11" * 20, True], token=make_token(SECRET))
    assert status == 200 and body["result"] is True and VOTES == [["0x" + "11" * 20, True]]
    assert call(public, "qbft_getPendingVotes", token=make_token(SECRET, ["qbft:*"]))[1]["result"] == {"0xabc": True}


def test_a_token_without_the_permission_is_refused(public: TestClient) -> None:
    body = call(public, "qbft_proposeValidatorVote", ["0x" + "11" * 20, True],
                token=make_token(SECRET, ["qbft:getPendingVotes"]))[1]
    assert body["error"]["code"] == UNAUTHORIZED and VOTES == []


def _forged(**claims: object) -> str:
    now = int(time.time())
    payload = {"permissions": ["*:*"], "iat": now, "exp": now + 300, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, SECRET, algorithm="HS256")


@pytest.mark.parametrize("token", [
    make_token(b"\x01" * 32),                                          # another node's secret
    _forged(exp=int(time.time()) - 3600),                              # expired
    _forged(exp=None),                                                 # no exp: would never expire
    _forged(permissions=None),                                         # no permissions claim
    jwt.encode({"permissions": ["*:*"], "iat": int(time.time()), "exp": int(time.time()) + 60}, None,
               algorithm="none"),                                      # alg none
    "not.a.jwt",
])
def test_invalid_tokens_are_refused_with_401(public: TestClient, token: str) -> None:
    status, body = call(public, "qbft_proposeValidatorVote", ["0x" + "11" * 20, True], token=token)
    assert status == 401 and body["error"]["code"] == UNAUTHORIZED and VOTES == []


def test_host_allowlist_and_cors(public: TestClient) -> None:
    assert public.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "web3_clientVersion"},
                       headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding
    ok = public.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "web3_clientVersion"},
                     headers={"Origin": "https://ops.example"})
    assert ok.headers.get("access-control-allow-origin") == "https://ops.example"
    other = public.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "web3_clientVersion"},
                        headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_loopback_admin_listener_serves_admin_methods_without_a_token(tmp_path: Path) -> None:
    config = {"host": "0.0.0.0", "port": 8545, "jwt_secret_file": _secret_file(tmp_path),
              "admin": {"host": "127.0.0.1", "port": 8645}}
    client = TestClient(make_rpc_app(None, ADMIN, access=RpcAccess.from_config(config, admin_listener=True)))  # type: ignore[arg-type]
    VOTES.clear()
    assert call(client, "qbft_proposeValidatorVote", ["0x" + "11" * 20, True])[1]["result"] is True


def test_non_loopback_admin_listener_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="other hosts reach"):
        RpcAccess.from_config({"host": "0.0.0.0", "admin": {"host": "0.0.0.0", "port": 8645}}, admin_listener=True)
    assert not RpcAccess.from_config({"host": "10.0.0.5", "port": 8545}).admin_without_token


def test_network_up_nodes_keep_serving_admin_methods_on_loopback() -> None:
    """``network up``'s node.json (rpc on 127.0.0.1, no admin listener, no secret) is unchanged."""
    client = TestClient(make_rpc_app(None, ADMIN, access=RpcAccess.from_config({"host": "127.0.0.1", "port": 1})))  # type: ignore[arg-type]
    VOTES.clear()
    assert call(client, "qbft_proposeValidatorVote", ["0x" + "11" * 20, True])[1]["result"] is True

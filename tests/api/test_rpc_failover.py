"""FailoverHTTPProvider: endpoints from the settings, failover on transport errors, and re-sent transactions
taken as sent only when the node has our very hash (nonce safety)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from eth_utils import keccak

from api.rpc_failover import FailoverHTTPProvider, parse_rpc_urls
from api.settings import Settings
from tests.ledger.helpers import free_port

Answer = Callable[[str, list[Any]], dict[str, Any]]


class FakeNode:
    """A JSON-RPC HTTP endpoint at the edge of the test: ``answer(method, params)`` gives the result or error."""

    def __init__(self, answer: Answer) -> None:
        self.calls: list[str] = []
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                node.calls.append(request["method"])
                body = json.dumps({"jsonrpc": "2.0", "id": request["id"],
                                   **answer(request["method"], request["params"])}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def nodes() -> Iterator[list[FakeNode]]:
    made: list[FakeNode] = []
    yield made
    for node in made:
        node.close()


def block_number(method: str, params: list[Any]) -> dict[str, Any]:
    return {"result": "0x10"} if method == "eth_blockNumber" else {"error": {"code": -32601, "message": "no"}}


def test_endpoints_from_the_settings() -> None:
    assert parse_rpc_urls(" http://a:1 , ,http://b:2,http://a:1", "http://z:9") == ["http://a:1", "http://b:2"]
    assert parse_rpc_urls(None, "http://z:9") == ["http://z:9"]
    assert parse_rpc_urls("", None) == []
    settings = Settings(rpc_url="http://z:9", rpc_urls="http://a:1,http://b:2")
    assert settings.rpc_endpoints == ["http://a:1", "http://b:2"]
    assert Settings(rpc_url="http://z:9").rpc_endpoints == ["http://z:9"]


def test_a_dead_endpoint_is_skipped_and_the_next_one_serves(nodes: list[FakeNode]) -> None:
    nodes.append(FakeNode(block_number))
    dead = f"http://127.0.0.1:{free_port()}"  # nobody listens
    clock = [100.0]
    provider = FailoverHTTPProvider([dead, nodes[0].url], request_kwargs={"timeout": 2}, cooldown_s=10,
                                    clock=lambda: clock[0])
    assert provider.make_request("eth_blockNumber", [])["result"] == "0x10"
    assert provider.current_url == nodes[0].url and provider.failovers == 1
    assert provider.make_request("eth_blockNumber", [])["result"] == "0x10"
    assert nodes[0].calls == ["eth_blockNumber", "eth_blockNumber"]  # the dead one was not retried
    # every endpoint down: the last transport error is raised (ChainClient turns it into ChainUnavailable)
    nodes[0].close()
    clock[0] += 20
    with pytest.raises(requests.ConnectionError):
        provider.make_request("eth_blockNumber", [])


def test_a_recovered_endpoint_is_probed_before_it_is_used_again(nodes: list[FakeNode]) -> None:
    first, second = FakeNode(block_number), FakeNode(block_number)
    nodes.extend([first, second])
    clock = [0.0]
    provider = FailoverHTTPProvider([first.url, second.url], cooldown_s=10, clock=lambda: clock[0])
    provider._down_until[0] = 5.0  # as after a failure of the first one
    provider.current = 0
    assert provider.make_request("eth_chainId", []) is not None
    assert provider.current_url == second.url and first.calls == []
    clock[0] = 6.0  # cooled down: a probe, then it is usable again (the current one stays current)
    provider.current = 0
    provider.make_request("eth_blockNumber", [])
    assert first.calls == ["eth_blockNumber", "eth_blockNumber"]


RAW = "0x02f86b" + "ab" * 100
OUR_HASH = "0x" + keccak(bytes.fromhex(RAW[2:])).hex()


@pytest.mark.parametrize(("message", "known_hash", "taken_as_sent"), [
    ("already known", None, True),
    ("nonce too low: next nonce 8, tx nonce 7", OUR_HASH, True),  # our transaction was mined there
    ("nonce too low: next nonce 8, tx nonce 7", None, False),  # another transaction took the nonce
    ("insufficient funds for gas * price + value", OUR_HASH, False),
])
def test_a_resent_transaction_is_taken_as_sent_only_when_the_node_has_our_hash(
    nodes: list[FakeNode], message: str, known_hash: str | None, taken_as_sent: bool,
) -> None:
    def answer(method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_sendRawTransaction":
            assert params == [RAW]
            return {"error": {"code": -32000, "message": message}}
        if method == "eth_getTransactionByHash":
            return {"result": {"hash": params[0]} if params[0] == known_hash else None}
        return block_number(method, params)

    nodes.append(FakeNode(answer))
    provider = FailoverHTTPProvider([nodes[0].url])
    response = provider.make_request("eth_sendRawTransaction", [RAW])
    if taken_as_sent:
        assert response["result"] == OUR_HASH and "error" not in response
    else:
        assert response["error"]["message"] == message and "result" not in response


def node_at(head: int, refusal: str | None, *, code: int = -32000) -> Answer:
    """A node whose head is ``head`` and that refuses RAW with ``refusal`` (code ``code``), or admits it."""

    def answer(method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_blockNumber":
            return {"result": hex(head)}
        if method == "eth_sendRawTransaction":
            assert params == [RAW]  # the same signed bytes on every node, never a new transaction
            return {"error": {"code": code, "message": refusal}} if refusal else {"result": OUR_HASH}
        if method == "eth_getTransactionByHash":
            return {"result": None}
        return {"error": {"code": -32601, "message": "no"}}

    return answer


NOT_PERMITTED = "sender account 0xAbC is not permitted to transact: it is neither a genesis account nor an active"


def test_a_lagging_validators_permission_refusal_is_retried_on_one_that_is_ahead(nodes: list[FakeNode]) -> None:
    """The failover landed on a validator one block behind, which does not yet know the sender was registered
    (-32007): the same bytes go to the validator that is ahead, which admits them and becomes current."""
    lagging, ahead = FakeNode(node_at(0x10, NOT_PERMITTED, code=-32007)), FakeNode(node_at(0x11, None))
    nodes.extend([lagging, ahead])
    provider = FailoverHTTPProvider([lagging.url, ahead.url])
    response = provider.make_request("eth_sendRawTransaction", [RAW])
    assert response["result"] == OUR_HASH and "error" not in response
    assert provider.current_url == ahead.url and provider.failovers == 1
    assert ahead.calls == ["eth_blockNumber", "eth_sendRawTransaction"]


@pytest.mark.parametrize("refusal", ["nonce too low: next nonce 8, tx nonce 7", NOT_PERMITTED])
def test_a_refusal_is_never_retried_on_a_validator_behind_the_refuser(nodes: list[FakeNode], refusal: str) -> None:
    """A node behind the refuser may admit a nonce the chain already used (or a sender since removed): it is not
    asked; with no node at or above the refuser's head the refusal stands."""
    up_to_date, behind = FakeNode(node_at(0x11, refusal)), FakeNode(node_at(0x10, None))
    nodes.extend([up_to_date, behind])
    provider = FailoverHTTPProvider([up_to_date.url, behind.url])
    response = provider.make_request("eth_sendRawTransaction", [RAW])
    assert response["error"]["message"] == refusal and "result" not in response
    assert "eth_sendRawTransaction" not in behind.calls and provider.current_url == up_to_date.url


def test_a_refusal_every_validator_agrees_on_stands(nodes: list[FakeNode]) -> None:
    """A sender that is really not permitted: each node at the same head refuses; the first refusal is returned,
    and a refusal that does not depend on the state (chain id) is not offered elsewhere at all."""
    nodes.extend([FakeNode(node_at(0x11, NOT_PERMITTED, code=-32007)) for _ in range(3)])
    provider = FailoverHTTPProvider([n.url for n in nodes])
    response = provider.make_request("eth_sendRawTransaction", [RAW])
    assert response["error"]["code"] == -32007 and provider.current_url == nodes[0].url
    assert all(n.calls.count("eth_sendRawTransaction") == 1 for n in nodes)
    wrong_chain = FakeNode(node_at(0x11, "invalid chain id 5: this chain is 881088"))
    other = FakeNode(node_at(0x11, None))
    nodes.extend([wrong_chain, other])
    provider = FailoverHTTPProvider([wrong_chain.url, other.url])
    assert "error" in provider.make_request("eth_sendRawTransaction", [RAW]) and other.calls == []

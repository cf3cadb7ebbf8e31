"""Contract custom errors in words: name, arguments by meaning, a sentence, the documented HTTP status."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak
from web3.exceptions import ContractCustomError

from api.chain import ChainError
from api.revert_reasons import REASONS, _errors, error_names, explain_chain_error, explain_data
from api.workflows.contract_calls import REFUSAL_STATUS, refusal

PERSON = "0x" + "ab" * 20


def _data(signature: str, types: list[str], values: list) -> bytes:
    return keccak(text=signature)[:4] + encode(types, values)


def test_wrong_status_names_status_action_and_the_status_needed() -> None:
    r = explain_data(_data("WrongStatus(uint256,uint8,uint8)", ["uint256", "uint8", "uint8"], [7, 1, 4]))
    assert r is not None and r.name == "WrongStatus" and r.status == 409
    assert r.arguments == {"ticketId": 7, "status": "issued", "action": "end_work"}
    assert r.sentence == "ticket 7 is `issued`; `end_work` needs `briefed`"


def test_missing_role_names_the_role_and_crew_counts_read_as_a_sentence() -> None:
    r = explain_data("0x" + _data("MissingRole(address,uint32)", ["address", "uint32"], [PERSON, 2]).hex())
    assert r is not None and r.status == 403
    assert r.arguments["role"] == "permitting_officer" and r.arguments["person"].lower() == PERSON
    assert "does not hold the person role `permitting_officer`" in r.sentence
    r = explain_data(_data("CrewNotAcknowledged(uint256,uint256,uint256)", ["uint256"] * 3, [1, 0, 2]))
    assert r is not None and r.sentence == "0 of 2 crew members acknowledged ticket 1; `end_work` needs all of them"


def test_receivable_values_are_amounts_and_times_are_iso() -> None:
    data = _data("InsufficientBalance(uint256,uint256,uint256)", ["uint256"] * 3, [3, 15_000_000, 15_000_001])
    r = explain_data(data)
    assert r is not None and r.sentence == "receivable 3 holds 150000.00; 150000.01 was asked" and r.status == 409
    r = explain_data(_data("Matured(uint256,uint64)", ["uint256", "uint64"], [3, 1_767_225_600]))
    assert r is not None and r.arguments["maturity"] == "2026-01-01T00:00:00Z"
    r = explain_data(_data("InvalidRoles(uint32)", ["uint32"], [8 | 256]))
    assert r is not None and r.arguments["roles"] == ["bank", "unknown bits 0x100"] and r.status == 422


def _sample(t: str) -> object:
    if t == "address":
        return PERSON
    if t == "string":
        return "88.1.x"
    if t == "bool":
        return True
    if t.startswith("bytes"):
        return b"EUR"[: int(t[5:])].ljust(int(t[5:]), b"\0") if t != "bytes" else b"\x01"
    return 1


def test_every_custom_error_of_every_contract_has_a_sentence_and_the_documented_status() -> None:
    missing = error_names() - set(REASONS)
    assert not missing, f"add a sentence to api/revert_reasons.REASONS for {sorted(missing)}"
    for selector, (name, inputs) in _errors().items():
        types = [i["type"] for i in inputs]
        r = explain_data(selector + encode(types, [_sample(t) for t in types]))
        assert r is not None and r.name == name
        assert not r.sentence.startswith(f"{name}("), f"{name}: template does not fit its arguments"
        assert "{" not in r.sentence, r.sentence
        if name in REFUSAL_STATUS:  # the table the routes used so far agrees
            assert r.status == REFUSAL_STATUS[name], name


def test_unknown_or_empty_revert_data_is_not_guessed() -> None:
    assert explain_data(b"\xde\xad\xbe\xef") is None
    assert explain_data("0x") is None and explain_data(None) is None and explain_data("0xzz") is None


@pytest.mark.parametrize("wrap", ["data", "dict", "message"])
def test_refusal_turns_a_chain_error_into_words_with_the_status(wrap: str) -> None:
    raw = "0x" + _data("WrongStatus(uint256,uint8,uint8)", ["uint256", "uint8", "uint8"], [9, 2, 6]).hex()
    if wrap == "data":
        cause: Exception = ContractCustomError(raw, data=raw)
    elif wrap == "dict":
        cause = ValueError({"code": 3, "message": "execution reverted", "data": raw})
    else:
        cause = ValueError(f"execution reverted: {raw}")
    try:
        try:
            raise cause
        except Exception as exc:
            raise ChainError("transaction would revert: WrongStatus(9, 2, 6)", "WrongStatus") from exc
    except ChainError as chain_error:
        assert explain_chain_error(chain_error) is not None
        http = refusal(chain_error, "cancel")
    assert http.status_code == 409
    assert http.detail == {"reason": "WrongStatus", "arguments": {"ticketId": 9, "status": "permitted",
                                                                  "action": "cancel"},
                           "message": "cancel refused by the chain: ticket 9 is `permitted`; `cancel` needs `issued`"}


def test_refusal_without_revert_data_keeps_the_old_answer() -> None:
    http = refusal(ChainError("transaction 0x12 reverted", None), "issue")
    assert http.status_code == 502 and http.detail["reason"] is None

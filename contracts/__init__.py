"""The Solidity contracts and their compiled artifacts, shipped as package data.

``contracts/build/<Name>.json`` holds what the pinned solc-js produced from ``contracts/<Name>.sol``
(keys ``abi``, ``bytecode``, ``deployedBytecode``, ``compiler`` …); :func:`load_artifact` is the one
way the rest of the code base reads them, so an installed wheel (``pip install .``) and a checkout
behave alike. Compiling needs Node.js and lives in :mod:`contracts.compile`.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

#: Every contract the validators' genesis admin deploys, in deployment (nonce) order.
CONTRACT_NAMES: tuple[str, ...] = ("EnterpriseRegistry", "AnchorRegistry", "WorkTicket", "ReceivableToken",
                                   "WarehouseReceipt", "PriceIndex")

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """Compiled artifact of contract ``name`` (``abi`` list, ``bytecode`` 0x-hex, …).

    Raises ``ValueError`` for a name that is not an identifier and ``FileNotFoundError`` (naming the
    command that builds it) when the artifact is absent. The returned dict is shared: do not mutate it.
    """
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid contract name: {name!r}")
    ref = resources.files(__name__).joinpath("build", f"{name}.json")
    try:
        return json.loads(ref.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"contract artifact build/{name}.json not found: run `traceledger contracts compile`"
        ) from exc

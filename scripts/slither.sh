#!/usr/bin/env bash
# Slither over the shipped contracts, compiled by the pinned solc-js through scripts/solc (no native
# solc can be downloaded here). Slither lives in its own venv (.venv-slither) so its pins do not
# touch the project's. Exit 1 on any Medium/High finding not triaged in contracts/AUDIT.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ -x .venv-slither/bin/slither ] || { python3 -m venv .venv-slither && .venv-slither/bin/pip install -q slither-analyzer==0.11.6; }
status=0
for c in EnterpriseRegistry AnchorRegistry WorkTicket ReceivableToken WarehouseReceipt PriceIndex; do
  echo "== $c"
  PATH="$ROOT/scripts:$PATH" .venv-slither/bin/slither "contracts/$c.sol" --solc "$ROOT/scripts/solc" \
    --exclude-informational --exclude-optimization --exclude-low --fail-medium 2>&1 | grep -v "running$" || status=1
done
exit $status

"""On-chain business workflows: persons, electronic work tickets (GB 26860), receivable tokens (ERC-3525)."""

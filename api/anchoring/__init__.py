"""Anchoring: the Merkle-batch worker, the database-wide lease that elects it, and its stand-alone process.

* :mod:`api.anchoring.worker` — :class:`AnchoringWorker`: pending records → RFC 9162 batch → one
  ``AnchorRegistry.anchor`` transaction, crash-safe (write-ahead batch rows, resume on restart).
* :mod:`api.anchoring.lease` — :class:`AnchorLease` (one anchoring process among many API workers:
  PostgreSQL advisory lock or SQLite ``flock``) and :func:`serialized` (the start-up lock under which
  schema migrations and the operator bootstrap run).
* :mod:`api.anchoring.service` — the worker as its own OS process: ``python -m api.anchoring.service``
  (also ``python -m api.anchoring``). Not re-exported here: it imports :mod:`api.main`, which imports this
  package.
"""

from api.anchoring.lease import LOCK_NAME, AnchorLease, advisory_key, serialized
from api.anchoring.worker import AnchoringWorker, batch_metadata_digest, leaf_hashes_of

__all__ = [
    "LOCK_NAME",
    "AnchorLease",
    "AnchoringWorker",
    "advisory_key",
    "batch_metadata_digest",
    "leaf_hashes_of",
    "serialized",
]

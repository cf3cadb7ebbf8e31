"""Former path of the stand-alone anchoring process, kept so ``python -m api.anchoring_service`` still works.

The code lives in :mod:`api.anchoring.service`; new callers use ``python -m api.anchoring.service``.
"""

from api.anchoring.service import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    raise SystemExit(main())

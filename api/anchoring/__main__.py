"""``python -m api.anchoring``: the stand-alone anchoring process (see :mod:`api.anchoring.service`)."""

from api.anchoring.service import main

raise SystemExit(main())

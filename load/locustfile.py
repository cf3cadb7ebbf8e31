"""All three user groups at once (weights factory 3 : auditor 2 : bank 1).

    .venv/bin/locust -f load/locustfile.py --headless -u 24 -r 8 -t 60s --host http://127.0.0.1:8000 \\
        --csv bench/mixed --only-summary
"""

from auditor import AuditorUser
from bank import BankUser
from factory import FactoryUser

__all__ = ["AuditorUser", "BankUser", "FactoryUser"]

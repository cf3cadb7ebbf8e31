"""The ``traceledger`` command line (console script ``traceledger = api.cli.main:app``)."""

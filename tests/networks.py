"""Running networks for the integration tests: one way to start an :class:`api.devnet.Stack` on free ports.

``running_stack`` starts a stack (validator processes, contracts, API process) under a fresh temporary directory
and always stops it; ``stack_fixture`` wraps it as a pytest fixture of any scope. The session's shared 4-validator
network (``shared_stack`` in ``tests/conftest.py``) is built with it, and so are the isolated networks of the
modules that kill validators or need special settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from api.devnet import Stack


@contextmanager
def running_stack(tmp_path_factory: pytest.TempPathFactory, data_dir: str, **settings: Any) -> Iterator[Stack]:
    """A started :class:`Stack` under ``tmp_path_factory.mktemp(data_dir)`` on free ports, stopped on exit.

    ``settings`` are :class:`Stack` fields (``validators``, ``extra_env``, ``database_url``, …).
    """
    s = Stack(data_dir=tmp_path_factory.mktemp(data_dir), api_port=None, rpc_base_port=None, p2p_base_port=None,
              **settings)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def stack_fixture(name: str, data_dir: str, scope: str = "module", **settings: Any) -> Callable[..., Any]:
    """A pytest fixture called ``name`` yielding a :func:`running_stack` for its ``scope``; assign it to a
    module-level (or conftest-level) variable of the same name."""

    @pytest.fixture(scope=scope, name=name)  # type: ignore[call-overload]
    def _stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
        with running_stack(tmp_path_factory, data_dir, **settings) as s:
            yield s

    return _stack

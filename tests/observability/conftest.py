"""The middleware's two paths: every test that asks for `middleware_path` runs on the compiled one and on Python's.

With ``OVERDRIVE_REQUIRE_SPEEDUPS=1`` (CI) the compiled extension must be importable: a build that silently fell
back to Python would otherwise leave the compiled path untested.
"""

from __future__ import annotations

import os
from importlib.util import find_spec

import pytest

from overdrive.observability import middleware


@pytest.fixture(params=["compiled", "python"])
def middleware_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the compiled per-request path, then with the Python reference path."""
    if request.param == "compiled":
        if find_spec("overdrive.observability._speedups") is None:
            if os.environ.get("OVERDRIVE_REQUIRE_SPEEDUPS") == "1":
                pytest.fail("The compiled extension overdrive.observability._speedups was not built.")
            pytest.skip("The compiled extension was not built here (no C compiler when installed).")
    else:
        monkeypatch.setattr(middleware, "_speedups", None)
    return str(request.param)

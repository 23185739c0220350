"""Every public module declares an `__all__` whose names all exist (ruff's RUF022 keeps it sorted)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import overdrive

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(overdrive.__path__, "overdrive.")
    if not any(part.startswith("_") for part in info.name.split("."))
)


@pytest.mark.parametrize("name", MODULES)
def test_all_is_declared_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing objects: {missing}"


def test_the_package_exposes_its_version() -> None:
    assert overdrive.__version__.count(".") == 2


def test_lazy_db_names_are_never_shadowed_by_submodules() -> None:
    """`overdrive.db` resolves names on first use; importing its submodules first must not change what they are."""
    import importlib
    import pkgutil
    import types

    import overdrive.db

    for module in pkgutil.iter_modules(overdrive.db.__path__):
        importlib.import_module(f"overdrive.db.{module.name}")
    for name in overdrive.db.__all__:
        assert not isinstance(getattr(overdrive.db, name), types.ModuleType), name
    assert sorted(dir(overdrive.db)) == sorted(overdrive.db.__all__)

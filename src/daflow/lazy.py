"""Packages whose names are imported on first use (PEP 562), so that importing them stays light."""

from __future__ import annotations


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]):
    """``(__getattr__, __all__)`` of a package whose names (``modules``: module path → its exported names) are
    imported on first use (PEP 562), so that importing the package stays light."""
    import importlib

    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(where)

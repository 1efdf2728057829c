"""The validate package: its public names are exactly its curated __all__."""

from __future__ import annotations

import inspect
import pkgutil
from importlib import import_module

import batchpay.validate as validate


def _defined_in_package(module: object) -> set[str]:
    """Public classes and functions in ``module``'s namespace that batchpay.validate defines."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and (value.__module__ or "").startswith(validate.__name__)
    }


def test_all_is_exactly_the_public_names() -> None:
    """__all__ is what callers import, and no helper of a submodule leaks into the package."""
    assert sorted(validate.__all__) == ["ValidationResult", "lower_bound", "validate_frame"]
    assert _defined_in_package(validate) == set(validate.__all__)
    for name in validate.__all__:
        assert getattr(validate, name).__module__ == validate.__name__, name


def test_each_module_all_names_what_it_defines() -> None:
    """Every submodule's __all__ names only what it has, and every function or class it defines."""
    for info in pkgutil.iter_modules(validate.__path__):
        module = import_module(f"{validate.__name__}.{info.name}")
        exported = set(module.__all__)
        assert all(hasattr(module, name) for name in exported), info.name
        defined = {
            n
            for n in _defined_in_package(module)
            if getattr(module, n).__module__ == module.__name__
        }
        assert defined <= exported, (info.name, defined - exported)

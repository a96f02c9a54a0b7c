"""Finding the tables an app exports: every ExportShardManager subclass in the configured modules."""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Iterable

from .cadence import Cadence
from .errors import ConfigError, UnknownTableError
from .manager import ExportShardManager


class Tables:
    """The exports an app defines, by table name."""

    def __init__(self, managers: Iterable[type[ExportShardManager]]):
        self._by_name: dict[str, type[ExportShardManager]] = {}
        for manager in managers:
            name = manager.table_name
            if name in self._by_name:
                raise ConfigError(
                    f"table {name!r} is defined twice: {self._by_name[name].__qualname__} and {manager.__qualname__}"
                )
            self._by_name[name] = manager

    @classmethod
    def from_modules(cls, modules: Iterable[str]) -> "Tables":
        """Import `modules` and collect the ExportShardManager subclasses each defines;
        ConfigError if one cannot be imported or defines none (a module listed by mistake would
        otherwise export nothing, silently)."""
        found = []
        for module_name in modules:
            try:
                module = importlib.import_module(module_name)
            except ImportError as error:
                raise ConfigError(f"ETL_EXPORT_MODULES names {module_name!r}, which cannot be imported: {error}")
            defined = [value for value in _exports_in(module) if value.__module__ == module.__name__]
            if not defined:
                raise ConfigError(_defines_none(module))
            found += defined
        return cls(found)

    def names(self) -> list[str]:
        """Every table name, sorted."""
        return sorted(self._by_name)

    def get(self, name: str) -> type[ExportShardManager]:
        """The export of `name`; UnknownTableError (listing the known names) if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownTableError(name, self.names()) from None

    def for_cadence(self, cadence: Cadence) -> list[type[ExportShardManager]]:
        """The exports on `cadence`, by table name."""
        return [self._by_name[n] for n in self.names() if Cadence(self._by_name[n].cadence) is cadence]

    def __iter__(self):
        return (self._by_name[n] for n in self.names())


def _exports_in(module: ModuleType) -> list[type[ExportShardManager]]:
    """The exports (ExportShardManager subclasses with a `table_name` of their own) `module` holds,
    whether it defines or imports them."""
    return [value for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, ExportShardManager) and "table_name" in vars(value)]


def _defines_none(module: ModuleType) -> str:
    """What to do about an export module that defines no export."""
    hint = ""
    imported = sorted({value.__module__ for value in _exports_in(module)})
    if imported:
        hint = f"; it imports exports from {', '.join(map(repr, imported))}: list that module instead"
    elif hasattr(module, "__path__"):
        submodules = sorted(info.name for info in pkgutil.iter_modules(module.__path__))
        if submodules:
            hint = (f"; it is a package: list the submodule that defines them "
                    f"({', '.join(f'{module.__name__}.{name}' for name in submodules)})")
    return (f"ETL_EXPORT_MODULES names {module.__name__!r}, which defines no export: it should hold the app's "
            f"ExportShardManager subclasses, each setting table_name{hint}")

"""Lazy references (``"package.module:attribute"``) and a registry of them, for sample models.

Listing what exists imports nothing heavy; the module is imported on first use. A second
registration of a name is refused, and a lookup miss lists the known names.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigError, UnknownNameError


def load_ref(ref: str, kind: str = "implementation") -> Any:
    """The attribute ``ref`` names, importing its module now."""
    mod_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == mod_name or exc.name.startswith("edgeport")):
            raise ConfigError(f"the {kind} {ref!r} cannot be imported: no module {exc.name!r}") from exc
        raise
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"the {kind} {ref!r} does not exist: {mod_name} has no {attr!r}") from None


class LazyRegistry:
    def __init__(self, kind: str, entries: dict[str, str]):
        self.kind = kind
        self._entries = dict(entries)

    def register(self, name: str, target: str) -> None:
        """Add ``name`` -> ``"package.module:attribute"``; an existing name is refused."""
        if name in self._entries:
            raise ConfigError(f"a {self.kind} named {name!r} is already registered ({self._entries[name]})")
        if ":" not in target:
            raise ConfigError(f"{self.kind} target must look like 'package.module:attribute', got {target!r}")
        self._entries[name] = target

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def load(self, name: str) -> Any:
        """The registered attribute (a class or function), importing its module now."""
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        return load_ref(self._entries[name], self.kind)

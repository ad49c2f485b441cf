"""Plugin registry: plugin name → factory taking the plugin's args (a mapping)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from corral.scheduler.framework.interfaces import Plugin

PluginFactory = Callable[[Mapping[str, Any]], Plugin]


class Registry:
    """Names to factories. There is no global registry: build one
    (:func:`corral.scheduler.plugins.default_registry`) and pass it along."""

    def __init__(self, factories: Mapping[str, PluginFactory] | None = None) -> None:
        self._factories: dict[str, PluginFactory] = dict(factories or {})

    def register(self, name: str, factory: PluginFactory) -> None:
        if name in self._factories:
            raise ValueError(f"plugin {name!r} is already registered")
        self._factories[name] = factory

    def create(self, name: str, args: Mapping[str, Any] | None = None) -> Plugin:
        try:
            factory = self._factories[name]
        except KeyError:
            raise KeyError(f"unknown scheduler plugin {name!r} (known: {', '.join(sorted(self._factories))})") from None
        return factory(args or {})

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._factories))

"""Name registries: a decorator that files a function or class under the name configs use for it.

Rewards (``rl.rewards.REWARDS``) and corpus quality filters (``pipelines.steps.QUALITY_FILTERS``) register this
way, and their configs check names against the table when they load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def registrar(table: dict[str, T]) -> Callable[[str], Callable[[T], T]]:
    """``register = registrar(TABLE)``, then ``@register("name")`` puts the decorated object in ``TABLE``."""

    def register(name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            table[name] = obj
            return obj

        return add

    return register

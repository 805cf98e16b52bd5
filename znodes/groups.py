"""Exception groups at API boundaries: a group that carries one error becomes that error.

Trio nurseries always raise `BaseExceptionGroup`s, even for a single error. Inside the
project, code that expects several errors at once handles groups with `except*`; at the
boundary a caller sees (`connect`, a client call, a recipe, a command's `main`), a group of
one is unwrapped so that `except NoServerError:` works as documented. A group of several
errors is a real group and is left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


def leaves(group: BaseExceptionGroup) -> list[BaseException]:
    """Every non-group exception inside `group`, however deeply nested."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(leaves(exc))
        else:
            found.append(exc)
    return found


def single_error(group: BaseExceptionGroup) -> BaseException | None:
    """The one exception `group` carries, or None when it carries several."""
    found = leaves(group)
    return found[0] if len(found) == 1 else None


def _raise_unwrapped(leaf: BaseException) -> None:
    # Raising inside a handler would chain the group in as the leaf's __context__ ("during
    # handling of the above exception..."): the very noise we remove. Keep the leaf's own.
    context = leaf.__context__
    try:
        raise leaf
    finally:
        leaf.__context__ = context
        del leaf, context  # no reference cycle through this frame


@contextlib.contextmanager
def unwrap_single() -> Iterator[None]:
    """Re-raise a group of one as its only exception; anything else passes unchanged."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaf = single_error(group)
        if leaf is None:
            raise
        _raise_unwrapped(leaf)


@contextlib.contextmanager
def first_error() -> Iterator[None]:
    """For parallel work whose failures are alike (the siblings of a recursive delete all
    losing one connection): re-raise the first error of a group of plain errors."""
    try:
        yield
    except BaseExceptionGroup as group:
        found = leaves(group)
        if len(found) > 1 and not all(isinstance(e, Exception) for e in found):
            raise  # a Cancelled or KeyboardInterrupt among them: not ours to pick
        _raise_unwrapped(found[0])

"""ccore.znodes.groups: what leaves an API boundary when a nursery raised a group."""

from __future__ import annotations

import pytest

from ccore.znodes.groups import first_error, single_error, unwrap_single


class Mine(Exception):
    pass


def test_a_group_of_one_leaves_as_its_error_with_its_own_cause_and_context():
    cause, context = KeyError("cause"), ValueError("context")
    error = Mine("the error")
    error.__cause__, error.__context__ = cause, context
    with pytest.raises(Mine) as caught, unwrap_single():
        raise ExceptionGroup("outer", [ExceptionGroup("inner", [error])])
    assert caught.value is error
    assert error.__cause__ is cause and error.__context__ is context  # not the group


def test_a_group_of_several_is_left_alone():
    with pytest.raises(ExceptionGroup), unwrap_single():
        raise ExceptionGroup("two", [Mine("a"), Mine("b")])
    assert single_error(ExceptionGroup("two", [Mine("a"), Mine("b")])) is None


def test_a_lone_keyboard_interrupt_is_unwrapped():
    with pytest.raises(KeyboardInterrupt), unwrap_single():
        raise BaseExceptionGroup("ctrl-c", [KeyboardInterrupt()])


def test_plain_errors_pass_unchanged():
    with pytest.raises(Mine), unwrap_single():
        raise Mine()


def test_first_error_picks_the_first_of_alike_failures():
    a, b = Mine("a"), Mine("b")
    with pytest.raises(Mine) as caught, first_error():
        raise ExceptionGroup("siblings", [a, ExceptionGroup("nested", [b])])
    assert caught.value is a


def test_first_error_leaves_a_group_with_an_interrupt_in_it():
    with pytest.raises(BaseExceptionGroup), first_error():
        raise BaseExceptionGroup("mixed", [Mine("a"), KeyboardInterrupt()])

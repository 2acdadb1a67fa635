"""Caller values read by value (what a subclass holds, without running its methods) or shown.

A context may hold ``str``/``int``/``float`` subclasses (enum members, numpy
floats) whose ``__hash__``, ``__eq__``, ``__str__`` or ``__len__`` do
anything, raising included. Every operator reads such a value through the
base type's own slot (``str.__str__``, ``int.__int__``, ``float.__float__``),
which returns a plain built-in copy, and tests the type with
``issubclass(type(value), …)`` rather than ``isinstance``: an object can lie
about its ``__class__``.
"""

from __future__ import annotations


def exact_text(value: object) -> str | None:
    """``value`` as an exact ``str`` when it is a string; ``None`` otherwise."""
    if type(value) is str:
        return value
    return str.__str__(value) if issubclass(type(value), str) else None


def exact_scalar(value: object) -> str | int | float | bool | None:
    """``value`` as an exact ``str``/``int``/``float``/``bool``; ``None`` if it is not a scalar."""
    t = type(value)
    if t is str or t is int or t is float or t is bool:
        return value  # type: ignore[return-value]
    if issubclass(t, str):
        return str.__str__(value)
    if issubclass(t, int):  # bool cannot be subclassed, so this is a number
        return int.__int__(value)  # type: ignore[arg-type]
    if issubclass(t, float):
        return float.__float__(value)  # type: ignore[arg-type]
    return None


def shown(value: object) -> str:
    """``repr(value)`` for an error message: shortened, and never raising.

    (The repr of a 5 000-digit integer raises; a megabyte string would flood a log.)
    """
    try:
        text = repr(value)
    except Exception:  # a caller's object whose __repr__ fails: name its type instead
        return f"a {type(value).__name__}"
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text)} characters)"

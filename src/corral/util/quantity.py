"""Kubernetes resource quantities (``500m``, ``2``, ``1Gi``, ``1.5e3``) as exact numbers.

CPU is compared in millicores and everything else in base units, so the scheduler,
the agent and the queues agree on one parser. Values are :class:`fractions.Fraction`
to stay exact; callers convert to ``int`` (millicores, bytes) where they store them.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: dict[str, Fraction] = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
            "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
            "P": Fraction(10**15), "E": Fraction(10**18)}
_PATTERN = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")


MAX_DIGITS = 64
"""Digits a quantity's number may have (Kubernetes' canonical quantities have at most 18 + 3)."""
MAX_EXPONENT = 30
"""Largest decimal exponent (``1e30``); larger ones are refused before any arithmetic, so a
``1e10000000`` cannot make the parser build a ten-million-digit integer (Kubernetes bounds
its scale the same way instead of computing the value)."""


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Fraction:
    """Parse a quantity into an exact number of base units (cores, bytes, devices)."""
    if isinstance(value, bool):
        raise QuantityError(f"quantity must be a string or number, not {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"{value!r} is not a finite quantity")
        return Fraction(str(value))
    if not isinstance(value, str):
        raise QuantityError(f"quantity must be a string or number, not {type(value).__name__}")
    text = value.strip()
    if len(text) > MAX_DIGITS + 8:
        raise QuantityError(f"{value[:40]!r}... is too long to be a quantity (at most {MAX_DIGITS} digits)")
    match = _PATTERN.match(text)
    if match is None:
        raise QuantityError(f"{value!r} is not a valid quantity (expected e.g. 500m, 2, 1Gi, 1.5e3)")
    number, exponent, suffix = match.groups()
    amount = Fraction(number)
    if exponent:
        # bounded before the power is computed: the exponent text may have any length
        digits = exponent[1:].lstrip("+-").lstrip("0")
        if len(digits) > 2 or int(digits or 0) > MAX_EXPONENT:
            raise QuantityError(f"{value!r} is out of range (the exponent may be at most {MAX_EXPONENT})")
        return amount * Fraction(10) ** int(exponent[1:])
    if suffix in _BINARY:
        return amount * _BINARY[suffix]
    return amount * _DECIMAL[suffix or ""]


def cpu_millis(value: str | int | float) -> int:
    """CPU quantity in millicores, rounded up as the kubelet does."""
    millis = parse_quantity(value) * 1000
    return int(-(-millis.numerator // millis.denominator))


def to_int(value: str | int | float) -> int:
    """Any non-CPU quantity in whole base units (bytes, devices), rounded up."""
    amount = parse_quantity(value)
    return int(-(-amount.numerator // amount.denominator))


def format_bytes(count: int) -> str:
    """Bytes as the largest exact binary suffix (``80Gi``), as Kubernetes prints memory."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if count and count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)

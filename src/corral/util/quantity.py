"""Kubernetes resource quantities (``500m``, ``2``, ``1Gi``, ``1.5e3``) as exact numbers.

CPU is compared in millicores and everything else in base units, so the scheduler,
the agent and the queues agree on one parser. Values are :class:`fractions.Fraction`
to stay exact; callers convert to ``int`` (millicores, bytes) where they store them.
"""

from __future__ import annotations

import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: dict[str, Fraction] = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
            "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
            "P": Fraction(10**15), "E": Fraction(10**18)}
_PATTERN = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Fraction:
    """Parse a quantity into an exact number of base units (cores, bytes, devices)."""
    if isinstance(value, bool):
        raise QuantityError(f"quantity must be a string or number, not {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    text = value.strip()
    match = _PATTERN.match(text)
    if match is None:
        raise QuantityError(f"{value!r} is not a valid quantity (expected e.g. 500m, 2, 1Gi, 1.5e3)")
    number, exponent, suffix = match.groups()
    amount = Fraction(number)
    if exponent:
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

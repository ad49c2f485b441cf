import math
import time
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.util.quantity import QuantityError, cpu_millis, format_bytes, parse_quantity, to_int


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500m", Fraction(1, 2)), ("2", 2), ("1Gi", 2**30), ("1.5e3", 1500), ("80G", 80 * 10**9), ("0.5", Fraction(1, 2))],
)
def test_parse_quantity(text: str, expected: Fraction) -> None:
    assert parse_quantity(text) == expected


def test_cpu_millis_rounds_up() -> None:
    assert cpu_millis("0.0001") == 1
    assert cpu_millis("250m") == 250
    assert cpu_millis(2) == 2000


@pytest.mark.parametrize("bad", ["", "1.2.3", "Gi", "10 Gi", "1Zi", "abc"])
def test_bad_quantity_names_the_value(bad: str) -> None:
    with pytest.raises(QuantityError, match="not a valid quantity"):
        parse_quantity(bad)


@given(st.integers(min_value=0, max_value=2**50))
def test_bytes_round_trip(count: int) -> None:
    assert to_int(format_bytes(count)) == count


@pytest.mark.parametrize("huge", ["1e10000000", "1e5000", "-1e10000000", "1E+99999999999999999999", "1e-10000000",
                                  "9" * 10_000, "1" + "0" * 100])
def test_huge_quantities_are_refused_fast(huge: str) -> None:
    """The exponent and digits are bounded before any arithmetic: ``1e10000000`` once took ~15 s of event loop."""
    started = time.perf_counter()
    with pytest.raises(QuantityError, match=r"out of range|too long"):
        parse_quantity(huge)
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_are_not_quantities(value: float) -> None:
    with pytest.raises(QuantityError, match="finite"):
        parse_quantity(value)


@given(st.integers(min_value=-30, max_value=30), st.integers(min_value=0, max_value=10**6))
def test_bounded_exponents_still_parse_exactly(exponent: int, mantissa: int) -> None:
    assert parse_quantity(f"{mantissa}e{exponent}") == Fraction(mantissa) * Fraction(10) ** exponent

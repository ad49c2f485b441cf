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

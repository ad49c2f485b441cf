from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.api.gpu import (
    DeviceAssignment,
    DeviceSpecError,
    format_gpu_devices,
    parse_device_inventory,
    parse_gpu_devices,
)


def test_parse_each_entry_kind() -> None:
    assert parse_gpu_devices("0,1, 3:0.5,2:mig-1g.10gb:4") == [
        DeviceAssignment(0), DeviceAssignment(1), DeviceAssignment(3, Fraction(1, 2)),
        DeviceAssignment(2, Fraction(1), "1g.10gb", 4),
    ]
    assert parse_gpu_devices(None) == []
    assert parse_gpu_devices("") == []


@pytest.mark.parametrize("bad", ["x", "-1", "0:1.5", "0:0", "0:mig-:1", "0:a:b:c", "0:foo:1"])
def test_bad_entries_name_the_entry(bad: str) -> None:
    with pytest.raises(DeviceSpecError, match=r"corral\.dev/gpu-devices"):
        parse_gpu_devices(bad)


assignments = st.one_of(
    st.builds(DeviceAssignment, st.integers(0, 15)),
    st.builds(DeviceAssignment, st.integers(0, 15), st.integers(1, 999).map(lambda m: Fraction(m, 1000))),
    st.builds(DeviceAssignment, st.integers(0, 15), st.just(Fraction(1)), st.sampled_from(["1g.10gb", "3g.40gb"]),
              st.integers(0, 6)),
)


@given(st.lists(assignments, max_size=8))
def test_round_trip(entries: list[DeviceAssignment]) -> None:
    assert parse_gpu_devices(format_gpu_devices(entries)) == entries


def test_inventory_must_be_a_list_of_devices() -> None:
    assert parse_device_inventory('[{"index": 0, "model": "H100-80GB"}]')[0]["model"] == "H100-80GB"
    with pytest.raises(DeviceSpecError, match="not valid JSON"):
        parse_device_inventory("{")
    with pytest.raises(DeviceSpecError, match="expected a JSON list"):
        parse_device_inventory('{"index": 0}')

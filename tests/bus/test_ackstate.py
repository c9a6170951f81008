"""Ack state: the floor is right for every order of acks; the state file is atomic and checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.bus.ackstate import AckState, ConsumerState, ConsumerStateFile


def expected_floor(acked: set[int]) -> int:
    floor = 0
    while floor + 1 in acked:
        floor += 1
    return floor


@given(st.lists(st.integers(min_value=1, max_value=60), max_size=120))
def test_any_interleaving_of_acks_yields_the_right_floor(acks: list[int]) -> None:
    state = AckState()
    seen: set[int] = set()
    for seq in acks:
        assert state.ack(seq) is (seq not in seen)
        seen.add(seq)
        floor = expected_floor(seen)
        assert state.floor == floor
        assert state.above == frozenset(s for s in seen if s > floor)
        assert all(state.is_acked(s) for s in seen)


@given(st.permutations(list(range(1, 41))))
def test_acking_everything_in_any_order_ends_at_the_top(order: list[int]) -> None:
    state = AckState()
    for seq in order:
        state.ack(seq)
    assert (state.floor, state.above_count) == (40, 0)


@given(
    st.lists(st.integers(min_value=1, max_value=50), max_size=40),
    st.integers(min_value=0, max_value=50),
    st.integers(min_value=1, max_value=50),
)
def test_ranges_and_advances_agree_with_single_acks(acks: list[int], advance: int, width: int) -> None:
    state = AckState()
    reference: set[int] = set()
    for seq in acks:
        state.ack(seq)
        reference.add(seq)
    state.advance_to(advance)
    reference.update(range(1, advance + 1))
    lo = advance + 2
    state.ack_range(lo, lo + width)
    reference.update(range(lo, lo + width + 1))
    assert state.floor == expected_floor(reference)
    assert state.above == frozenset(s for s in reference if s > state.floor)


def test_restored_state_compacts_its_above_set() -> None:
    state = AckState(floor=3, above=[2, 4, 5, 7])
    assert state.floor == 5
    assert state.above == frozenset({7})


def test_state_file_round_trip_and_atomic_replacement(tmp_path: Path) -> None:
    file = ConsumerStateFile(tmp_path, "norm")
    assert file.load() is None
    state = ConsumerState(
        subject="s", durable_name="norm", floor=4, above=[9, 6], cursor=10, deliveries={5: 2}
    )
    file.save(state)
    file.save(state)
    loaded = file.load()
    assert loaded == ConsumerState(
        subject="s", durable_name="norm", floor=4, above=[6, 9], cursor=10, deliveries={5: 2}
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["norm.state"]


def test_a_damaged_state_file_is_detected(tmp_path: Path) -> None:
    file = ConsumerStateFile(tmp_path, "norm")
    file.save(ConsumerState(subject="s", durable_name="norm", floor=40))
    data = bytearray(file.path.read_bytes())
    data[data.index(b"40")] = ord("9")
    file.path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="CRC"):
        file.load()
    file.path.write_bytes(b"")
    with pytest.raises(ValueError, match="CRC"):
        file.load()

"""The controller's work queue and backoff: one entry per name at its earliest due time, never handed
out twice at once, a change made while processing kept; retries doubling to a cap, jittered."""

from __future__ import annotations

import threading

import pytest

from webhook.provisioner.workqueue import Backoff, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drain(queue: WorkQueue) -> list[str]:
    names = []
    while (name := queue.get(timeout=0)) is not None:
        names.append(name)
        queue.done(name)
    return names


def test_a_name_added_twice_is_handed_out_once() -> None:
    queue = WorkQueue(Clock())
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert drain(queue) == ["a", "b"]


def test_the_earliest_due_time_wins() -> None:
    clock = Clock()
    queue = WorkQueue(clock)
    queue.add_after("resynced", 3600)
    queue.add("resynced")  # an event beats the resync
    queue.add("evented")
    queue.add_after("evented", 3600)  # a later resync does not push the event back
    assert sorted(drain(queue)) == ["evented", "resynced"]
    assert queue.scheduled("resynced") is None


def test_a_delayed_name_is_due_only_after_its_delay() -> None:
    clock = Clock()
    queue = WorkQueue(clock)
    queue.add_after("a", 5)
    assert queue.get(timeout=0) is None
    assert queue.ready() == 0
    assert queue.scheduled("a") == pytest.approx(5)
    clock.now += 5
    assert queue.ready() == 1
    assert queue.get(timeout=0) == "a"


def test_a_name_is_never_processed_twice_at_once_and_a_change_meanwhile_is_kept() -> None:
    queue = WorkQueue(Clock())
    queue.add("a")
    assert queue.get(timeout=0) == "a"
    queue.add("a")  # the object changed while it was being reconciled
    assert queue.get(timeout=0) is None  # not while the first reconcile runs
    queue.done("a")
    assert queue.get(timeout=0) == "a"  # then once more, for the change


def test_forget_drops_what_was_scheduled() -> None:
    queue = WorkQueue(Clock())
    queue.add_after("gone", 1)
    queue.forget("gone")
    assert queue.scheduled("gone") is None
    assert drain(queue) == []


def test_get_waits_for_an_add_from_another_thread_and_shutdown_wakes_it() -> None:
    queue = WorkQueue()
    got: list[str | None] = []
    waiter = threading.Thread(target=lambda: got.append(queue.get(timeout=5)))
    waiter.start()
    queue.add("a")
    waiter.join(5)
    assert got == ["a"]
    waiter = threading.Thread(target=lambda: got.append(queue.get()))
    waiter.start()
    queue.shutdown()
    waiter.join(5)
    assert not waiter.is_alive()
    assert got == ["a", None]


def test_backoff_doubles_from_one_second_to_five_minutes_with_jitter() -> None:
    backoff = Backoff()
    ceilings = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    for ceiling in ceilings:
        delay = backoff.next_delay("a")
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.failures("a") == len(ceilings)
    assert backoff.next_delay("b") <= 1  # per object
    backoff.reset("a")
    assert backoff.next_delay("a") <= 1


def test_backoff_is_jittered() -> None:
    delays = {Backoff().next_delay("a") for _ in range(20)}
    assert len(delays) > 1

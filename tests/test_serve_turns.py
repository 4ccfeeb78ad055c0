"""Intake batches take turns; one waiting on the journal's fsync lets the next one run (serve.journal.Turns)."""
from __future__ import annotations

import threading

from distillguard.serve.journal import Journal, Turns


def test_a_batch_aside_lets_the_next_take_its_turn_and_gets_it_back_after():
    turns, log = Turns(), []
    aside, b_done = threading.Event(), threading.Event()

    def a():
        with turns.turn():
            log.append("a starts")
            with turns.aside():
                aside.set()
                assert b_done.wait(5), "b could not take the turn while a was aside"
            log.append("a resumes")

    def b():
        aside.wait(5)
        with turns.turn():
            log.append("b runs")
        b_done.set()

    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    ta.start(), tb.start()
    ta.join(10), tb.join(10)
    assert log == ["a starts", "b runs", "a resumes"]


def test_outside_a_turn_aside_is_nothing_and_turns_exclude_each_other():
    turns = Turns()
    with turns.aside():  # no turn held: nothing to give back
        pass
    inside, overlap = [0], []

    def batch():
        for _ in range(200):
            with turns.turn():
                inside[0] += 1
                overlap.append(inside[0])
                inside[0] -= 1

    threads = [threading.Thread(target=batch) for _ in range(4)]
    [t.start() for t in threads]
    [t.join(10) for t in threads]
    assert max(overlap) == 1 and len(overlap) == 800


def test_journal_append_within_a_turn_steps_aside_and_returns_with_it(tmp_path):
    j = Journal(None, str(tmp_path / "j.jsonl"))
    other_ran = threading.Event()

    def other():
        with j.turns.turn():
            other_ran.set()

    try:
        with j.turns.turn():
            j.append([{"account_id": "a", "ts": 1}])
            t = threading.Thread(target=other)
            t.start()
            assert not other_ran.wait(0.3)  # the turn came back with the append: the other batch waits
        assert other_ran.wait(5)
        t.join(5)
    finally:
        j.close()

"""Probes side by side: the scheduler, and an audit that gives the same report on any number of workers."""

from __future__ import annotations

import json
import random
import threading
import time
import warnings

import numpy as np
import pytest
import torch

import gapdiag
from gapdiag._threads import probe_workers, run_side_by_side, single_threaded
from gapdiag.digits import build_scenario


def _record(seconds: float = 0.0):
    calls: list[tuple[int, str]] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        time.sleep(seconds)
        with lock:
            calls.append((i, threading.current_thread().name))

    return calls, run


def test_one_worker_runs_the_alone_tasks_then_the_others_in_order_on_the_calling_thread():
    calls, run = _record()
    run_side_by_side([0, 3], [1, 2, 4], run, workers=1)
    me = threading.current_thread().name
    assert calls == [(i, me) for i in (0, 3, 1, 2, 4)]


@pytest.mark.parametrize("workers", [1, 3])
def test_an_alone_task_gets_every_core_and_a_side_by_side_task_one(workers):
    threads: dict[int, int] = {}
    before = torch.get_num_threads()
    with single_threaded():
        run_side_by_side(
            [0], [1, 2], lambda i: threads.setdefault(i, torch.get_num_threads()), workers=workers
        )
    assert threads == {0: before, 1: 1, 2: 1}
    assert torch.get_num_threads() == before


def test_alone_tasks_run_first_in_order_on_the_calling_thread_and_every_task_runs_once():
    calls, run = _record(seconds=0.01)
    run_side_by_side([5, 0, 2], [1, 3, 4, 6, 7], run, workers=3)
    me = threading.current_thread().name
    assert sorted(i for i, _ in calls) == list(range(8))
    # nothing runs beside an alone task: it may hold the global state a side-by-side task waits for
    assert calls[:3] == [(5, me), (0, me), (2, me)]
    assert any(name != me for _, name in calls), "the side-by-side tasks used the helper threads"


def test_a_failing_task_stops_the_others_and_is_raised_after_every_thread_has_stopped():
    done: list[int] = []

    def run(i: int) -> None:
        if i == 1:
            raise RuntimeError("task 1 broke")
        time.sleep(0.02)
        done.append(i)

    with pytest.raises(RuntimeError, match="task 1 broke"):
        run_side_by_side([0], list(range(1, 40)), run, workers=2)
    assert 0 in done and len(done) < 10, "no task starts once one has failed"
    assert not [t for t in threading.enumerate() if t.name.startswith("gapdiag-probe")]


def test_an_interrupt_on_the_calling_thread_starts_no_new_task():
    done: list[int] = []

    def run(i: int) -> None:
        if i == 3:
            time.sleep(0.05)
            raise KeyboardInterrupt
        time.sleep(0.02)
        done.append(i)

    with pytest.raises(KeyboardInterrupt):
        run_side_by_side([], list(range(60)), run, workers=2)
    assert len(done) < 10


def test_workers_default_to_one_more_than_the_usable_cores_at_most_four():
    assert probe_workers(3) == 3
    assert 2 <= probe_workers(None) <= 4


def test_workers_option_is_validated():
    with pytest.raises(gapdiag.ConfigError, match="workers"):
        gapdiag.Config.from_mapping({"workers": 0})


@pytest.fixture(scope="module")
def dropout_model():
    """A trained CNN with BatchNorm and Dropout: the mode probe draws dropout masks from torch's stream."""
    return build_scenario(
        n_pairs=600, epochs=2, n_val_episodes=150, model_kwargs={"dropout": 0.3, "batchnorm": True}, seed=3
    )


def _without_workers(report) -> dict:
    out = json.loads(report.render("json"))
    out["meta"]["config"]["options"].pop("workers")
    return out


def test_probes_side_by_side_give_the_report_of_one_thread_and_leave_the_process_as_it_was(dropout_model):
    s = dropout_model
    np.random.seed(7)
    random.seed(7)
    torch.manual_seed(7)
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.random.get_rng_state()
    filters, training = list(warnings.filters), s.model.module.training
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        reports = [
            gapdiag.audit(s.model, s.train, s.val, config={"workers": w, "n_boot": 100}, progress=False)
            for w in (1, 4)
        ]
    # what gapdiag silences in its libraries stays silent with threads entering catch_warnings around it
    assert not [w for w in shown if "precomputed_knn" in str(w.message) or "not writable" in str(w.message)]
    assert not any(r.errored for r in reports)
    assert reports[1].result("mode").status == "ok" and reports[1].result("class_gap").status == "ok"
    assert _without_workers(reports[0]) == _without_workers(reports[1])
    after = np.random.get_state()
    assert np.array_equal(np_state[1], after[1]) and np_state[2] == after[2]
    assert random.getstate() == py_state
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert warnings.filters == filters
    assert s.model.module.training == training

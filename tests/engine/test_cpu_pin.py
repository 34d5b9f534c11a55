"""The training loop of a one-GPU run keeps its threads on one CPU; a CPU run keeps every core."""

import os
import subprocess
import sys
import threading

import pytest

from engine.train.cpu_pin import PIN_ENV, _taken, card_number, choose_cpu, pinned

needs_two_cpus = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity and two CPUs",
)


def test_processes_on_different_cards_take_cpus_of_their_own_cpu_0_last():
    allowed = {0, 1, 2, 3}
    assert [choose_cpu(allowed, card) for card in range(4)] == [1, 2, 3, 0]
    assert choose_cpu({4, 9}, 0) == 9 and choose_cpu({4, 9}, 1) == 4  # a container's own CPUs
    assert choose_cpu(allowed, 0, {1}) == 2  # a run on the same card keeps CPU 1
    assert choose_cpu(allowed, 0, allowed) == 1  # every one kept: share rather than refuse


@pytest.mark.parametrize(
    "visible, card, expected", [("", 1, 1), ("2,3", 1, 3), ("3", 0, 3), ("GPU-8f2c,GPU-1a0b", 1, 1)]
)
def test_two_runs_started_at_once_on_two_cards_count_their_cards_as_the_machine_does(
    monkeypatch, visible, card, expected
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert card_number(card) == expected


@needs_two_cpus
def test_a_gpu_run_trains_on_one_cpu_and_gets_its_cpus_back(monkeypatch):
    monkeypatch.delenv(PIN_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    before, events, seen, done = os.sched_getaffinity(0), [], {}, threading.Event()
    sampler = threading.Thread(target=done.wait)  # started before, as the GPU sampler is
    sampler.start()

    def autograd_like():
        seen["new"] = os.sched_getaffinity(0)

    with pinned("cuda", 0, events.append) as cpu:
        seen["main"] = os.sched_getaffinity(0)
        seen["old"] = os.sched_getaffinity(sampler.native_id)
        thread = threading.Thread(target=autograd_like)  # started inside, as autograd's is
        thread.start()
        thread.join()
    # CPU 1, unless a program beside this test keeps it to itself (another test run's pinning)
    assert cpu == choose_cpu(before, 0, _taken())
    assert seen == {"main": {cpu}, "old": {cpu}, "new": {cpu}}
    assert os.sched_getaffinity(0) == before == os.sched_getaffinity(sampler.native_id)
    done.set()
    sampler.join()
    assert f"CPU {cpu}" in events[0].line and f"{PIN_ENV}=0" in events[0].line


@needs_two_cpus
@pytest.mark.parametrize(
    "device, env, processes",
    [
        ("cpu", None, 1),
        ("cuda", "0", 1),
        ("cuda", "off", 1),
        ("cuda", " False ", 1),
        ("cuda", None, 2),
    ],
)
def test_a_cpu_run_the_ranks_of_several_gpus_or_the_env_switch_leave_the_scheduler_free(
    monkeypatch, device, env, processes
):
    if env is None:
        monkeypatch.delenv(PIN_ENV, raising=False)
    else:
        monkeypatch.setenv(PIN_ENV, env)
    before, events = os.sched_getaffinity(0), []
    with pinned(device, 0, events.append, processes=processes) as cpu:
        assert cpu is None and os.sched_getaffinity(0) == before
    assert events == []


@needs_two_cpus
def test_a_second_run_on_the_same_card_does_not_share_the_first_ones_cpu(monkeypatch):
    """Two runs on one card (two terminals, one GPU): the second takes another CPU than the one
    the first keeps to itself."""
    monkeypatch.delenv(PIN_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    first = sorted(os.sched_getaffinity(0))[1]  # what a lone run on card 0 takes
    code = f"import os, sys, time; os.sched_setaffinity(0, {{{first}}}); print(1, flush=True); time.sleep(60)"
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "1"
        with pinned("cuda", 0, lambda event: None) as cpu:
            assert cpu != first and os.sched_getaffinity(0) == {cpu}
    finally:
        other.kill()
        other.wait()

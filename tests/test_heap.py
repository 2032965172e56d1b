"""parfit.engine.heap: large temporaries on the heap in workers started by dask.distributed."""

import threading

import pytest

from parfit.engine import heap


@pytest.fixture
def calls(monkeypatch):
    """Record the mallopt calls instead of making them."""
    seen = []
    monkeypatch.setattr(heap, "_mallopt", lambda param, value: seen.append((param, value)) or 1)
    monkeypatch.setattr(heap, "_active", 0)
    return seen


def test_nothing_happens_outside_a_distributed_worker(calls, monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with heap.large_temporaries_on_heap():
        pass
    assert calls == []


def test_nothing_happens_where_the_cluster_chose_the_mmap_threshold(calls, monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    with heap.large_temporaries_on_heap():
        pass
    assert calls == []


def test_raised_for_the_block_and_set_back_after(calls, monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with heap.large_temporaries_on_heap():
        assert calls == [(-3, 64 << 20)]
        with heap.large_temporaries_on_heap():  # a second block on another thread
            assert calls == [(-3, 64 << 20)]
        assert calls == [(-3, 64 << 20)]
    assert calls == [(-3, 64 << 20), (-3, 128 << 10)]
    with pytest.raises(RuntimeError, match="boom"):
        with heap.large_temporaries_on_heap():
            raise RuntimeError("boom")
    assert calls[-1] == (-3, 128 << 10) and heap._active == 0


def test_threads_share_one_raised_period(calls, monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    inside = threading.Barrier(4)

    def block():
        with heap.large_temporaries_on_heap():
            inside.wait(timeout=10)

    threads = [threading.Thread(target=block) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [(-3, 64 << 20), (-3, 128 << 10)]

"""The getInfo download loop (soilbook.data.earthengine.sampling.download): retries on 429 and
transient errors, a clear stop on a refusal, and the resumable, checksummed cache (offline)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from soilbook.data.earthengine.sampling import download
from soilbook.errors import DataUnavailableError, ParameterError


class FakeBatch:
    """A stand-in for an ``ee.FeatureCollection``: ``serialize()`` for the cache key, and a
    ``getInfo()`` that raises the scripted errors in turn before answering."""

    def __init__(self, name: str, errors: list[Exception] | None = None) -> None:
        self.name, self.errors, self.calls = name, list(errors or []), 0

    def serialize(self) -> str:
        return json.dumps({"batch": self.name})

    def getInfo(self) -> dict:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"features": [{"properties": {"id": f"{self.name}-{i}"}} for i in range(2)]}


def _ids(features: list[dict]) -> list[str]:
    return [f["properties"]["id"] for f in features]


def test_retries_a_429_with_back_off_then_answers() -> None:
    waits: list[float] = []
    batch = FakeBatch("a", [RuntimeError("429 Too Many Requests"), TimeoutError("slow")])
    features = download([batch], progress=False, sleep=waits.append, max_rate=None)
    assert _ids(features) == ["a-0", "a-1"]
    assert batch.calls == 3 and len(waits) == 2 and all(w >= 0 for w in waits)


def test_a_refusal_stops_at_once_with_what_to_do() -> None:
    batch = FakeBatch("a", [RuntimeError("Image.select: band 'B99' not found")])
    with pytest.raises(DataUnavailableError, match=r"refused the request.*What to do"):
        download([batch], progress=False, sleep=lambda s: None)
    assert batch.calls == 1


def test_retries_spent_say_so() -> None:
    batch = FakeBatch("a", [RuntimeError("503 backend error")] * 3)
    with pytest.raises(DataUnavailableError, match="still asked to retry after 3"):
        download([batch], progress=False, retries=2, sleep=lambda s: None)


def test_the_cache_resumes_after_a_failure_and_is_reused(tmp_path: Path) -> None:
    first, second = FakeBatch("a"), FakeBatch("b", [RuntimeError("permission denied")])
    with pytest.raises(DataUnavailableError):
        download([first, second], progress=False, cache_dir=tmp_path, sleep=lambda s: None)
    assert first.calls == 1 and len(list(tmp_path.glob("*.json"))) == 1
    features = download([first, second], progress=False, cache_dir=tmp_path)
    assert _ids(features) == ["a-0", "a-1", "b-0", "b-1"]
    assert first.calls == 1 and second.calls == 2  # only the missing batch was asked again
    download([first, second], progress=False, cache_dir=tmp_path)
    assert first.calls == 1 and second.calls == 2  # a repeat asks for nothing


def test_a_damaged_cache_file_is_asked_again(tmp_path: Path) -> None:
    batch = FakeBatch("a")
    download([batch], progress=False, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.json")
    cached.write_text('[{"properties": {"id": "tampered"}}]')
    assert _ids(download([batch], progress=False, cache_dir=tmp_path)) == ["a-0", "a-1"]
    assert batch.calls == 2


class SlowBatch(FakeBatch):
    """A batch that stays in flight a while and records how many are in flight at once."""

    lock = threading.Lock()
    in_flight = 0
    most = 0

    def getInfo(self) -> dict:
        with SlowBatch.lock:
            SlowBatch.in_flight += 1
            SlowBatch.most = max(SlowBatch.most, SlowBatch.in_flight)
        time.sleep(0.02)
        with SlowBatch.lock:
            SlowBatch.in_flight -= 1
        return super().getInfo()


def test_batches_run_in_parallel_within_the_limit_and_keep_their_order() -> None:
    batches = [SlowBatch(f"b{i}") for i in range(12)]
    features = download(batches, progress=False, max_workers=3, max_rate=None)
    assert _ids(features) == [f"b{i}-{j}" for i in range(12) for j in range(2)]
    assert 1 < SlowBatch.most <= 3


def test_bad_download_settings_are_refused_before_any_request() -> None:
    batch = FakeBatch("a")
    with pytest.raises(ParameterError, match="max_workers"):
        download([batch], progress=False, max_workers=41)
    with pytest.raises(ParameterError, match="max_rate"):
        download([batch], progress=False, max_rate=0)
    assert batch.calls == 0

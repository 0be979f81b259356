"""The spool writer's answer to each kind of reply from ingest_entries, against httpx's mock transport: what
it stores and counts, what it retries, what it sets aside, and whose credential it reports refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from busymate.proxy.spool import Writer

KEY = "sb_publishable_test"
TOKEN = "device-token"
DEVICE = "00000000-0000-0000-0000-0000000000d1"


def run_writer(
    tmp_path: Path,
    reply: Callable[[httpx.Request], httpx.Response],
    until: Callable[[Writer, list[tuple[str, str]]], bool],
    token: str | None = TOKEN,
) -> tuple[Writer, list[httpx.Request], list[tuple[str, str]]]:
    """Put two rows for DEVICE, run the writer until `until` holds (5 s at most) and stop it; the writer, what
    it sent and the refusals it reported."""
    sent: list[httpx.Request] = []
    refused: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return reply(request)

    async def scenario() -> Writer:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            writer = Writer(
                tmp_path, "http://api.test", KEY, lambda _d: token, lambda d, why: refused.append((d, why)),
                http=http,
            )  # fmt: skip
            writer.start()
            writer.put(DEVICE, {"id": "r1"})
            writer.put(DEVICE, {"id": "r2"})
            await poll(lambda: until(writer, refused))
            await writer.stop(drain_for=0)
            return writer

    return asyncio.run(scenario()), sent, refused


async def poll(done: Callable[[], bool]) -> None:
    for _ in range(100):
        if done():
            return
        await asyncio.sleep(0.05)


def segments(tmp_path: Path, suffix: str = ".json") -> list[Path]:
    return sorted((tmp_path / DEVICE).glob(f"*{suffix}"))


def test_a_stored_batch_is_counted_and_its_segment_deleted(tmp_path: Path) -> None:
    answer = {"inserted": 1, "duplicates": 0, "rejected": 1, "ids": ["r1", None], "errors": [{"index": 1}]}
    writer, sent, refused = run_writer(
        tmp_path, lambda _r: httpx.Response(200, json=answer), lambda w, _r: w.stats.batches == 1
    )
    assert (writer.stats.stored, writer.stats.duplicates, writer.stats.rejected) == (1, 0, 1)
    [request] = sent
    assert request.url.path == "/rest/v1/rpc/ingest_entries"
    assert request.headers["apikey"] == KEY
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"batch": [{"id": "r1"}, {"id": "r2"}]}
    assert segments(tmp_path) == []
    assert refused == []


def test_no_answer_and_5xx_are_retried_and_the_segment_kept(tmp_path: Path) -> None:
    calls: list[str] = []

    def reply(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(503, json={"message": "database restarting"})

    writer, sent, refused = run_writer(tmp_path, reply, lambda w, _r: w.stats.failed_posts >= 2)
    assert writer.stats.failed_posts >= 2
    assert len(sent) >= 2  # retried after the backoff
    assert len(segments(tmp_path)) == 1  # still on disk, for the next try or the next run
    assert refused == []


def test_a_401_reports_the_device_with_the_servers_reason_and_keeps_its_segments(tmp_path: Path) -> None:
    voided = {"code": "PGRST301", "message": "the device credential was voided"}
    writer, sent, refused = run_writer(
        tmp_path, lambda _r: httpx.Response(401, json=voided), lambda _w, said: bool(said)
    )
    assert refused == [(DEVICE, "the device credential was voided")]
    assert len(sent) == 1  # not retried: the port closes until the device is paired again
    assert len(segments(tmp_path)) == 1
    assert writer.pending_segments() == 0  # a refused device's segments wait, not counted as pending


def test_another_4xx_sets_the_batch_aside_and_moves_on(tmp_path: Path) -> None:
    writer, sent, refused = run_writer(
        tmp_path,
        lambda _r: httpx.Response(400, json={"message": "bad batch"}),
        lambda _w, _r: bool(segments(tmp_path, ".refused")),
    )
    assert len(sent) == 1  # never looped on
    assert segments(tmp_path) == []
    assert len(segments(tmp_path, ".refused")) == 1
    assert writer.stats.failed_posts == 0
    assert refused == []


def test_a_device_without_a_credential_sends_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def waits() -> bool:
        return any("has no credential" in r.getMessage() for r in caplog.records)

    _, sent, refused = run_writer(
        tmp_path, lambda _r: httpx.Response(200, json={}), lambda _w, _r: waits(), token=None
    )
    assert waits()
    assert sent == []
    assert len(segments(tmp_path)) == 1
    assert refused == []  # no token is not a refusal: it waits for one

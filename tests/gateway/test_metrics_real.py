"""/metrics against real media: the simulator streams to the gateway, which publishes to shared memory.

``rtms_media_delay_seconds`` must fill from real audio timestamps (wall clock at the gateway minus
Zoom's media timestamp, sampled at collection) and ``rtms_shm_participant_rings_ratio`` must follow
the participant rings the writer hands out, on both audio paths (the audio engine and the native
fast path). No wall-clock bound is tight: loopback delays are checked against a generous ceiling.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import client
from gateway.app import MEDIA_DELAY_SAMPLE_S, Gateway
from gateway.config import AudioSettings, PublishConfig, SessionsConfig
from tests.gateway.conftest import wait_for
from tests.gateway.test_app_e2e import listener_available  # noqa: F401 - fixture
from tests.gateway.test_app_fakes import CLIENT_SECRET, WEBHOOK_SECRET, make_config

PREFIX = "gw-metrics"
#: live loopback packets without a startup backlog: far below this, whatever the machine's load.
DELAY_CEILING_S = 5.0


async def scrape(gw: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One /metrics scrape over HTTP, as {(sample name, sorted labels): value}."""
    async with aiohttp.ClientSession() as http, http.get(gw.base_url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def delay(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> tuple[float, float]:
    """(count, sum) of the media delay histogram."""
    return samples[("rtms_media_delay_seconds_count", ())], samples[("rtms_media_delay_seconds_sum", ())]


def rings(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], stat: str = "max") -> float:
    return samples[("rtms_shm_participant_rings_ratio", (("stat", stat),))]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("engine", [True, False], ids=["audio-engine", "native-fast-path"])
async def test_media_delay_and_participant_rings_follow_real_media(sim_factory: Any, listener_available: None, tmp_path: Any, engine: bool) -> None:  # noqa: F811
    sessions = SessionsConfig(media_kinds=("audio",), media_params={"audio": {"data_opt": 2}}, buffer_data=False)
    config = replace(make_config(sessions=sessions), publish=PublishConfig(shm=True, shm_dir=str(tmp_path), shm_prefix=PREFIX),
                     audio=AudioSettings(engine=engine))
    gw = Gateway(config)
    await gw.start()
    try:
        before = await scrape(gw)
        assert delay(before) == (0.0, 0.0)  # nothing streamed yet: no sample, no placeholder value
        assert rings(before) == 0.0 and rings(before, "mean") == 0.0
        sim = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url)
        stream = sim.create_stream()
        await wait_for(lambda: len(client.list_streams(PREFIX, str(tmp_path))) == 1, timeout_s=20)
        reader = client.attach(client.list_streams(PREFIX, str(tmp_path))[0], PREFIX, str(tmp_path))
        try:
            await wait_for(lambda: len([r for r in reader.participants() if r.user_id]) >= 2, timeout_s=20)
            slots = gw._shm().config.max_participants
            counts: list[float] = []
            for _ in range(200):  # bounded: scrapes spaced past the sampling interval until three delay samples
                samples = await scrape(gw)
                counts.append(delay(samples)[0])
                if counts[-1] >= 3:
                    break
                await asyncio.sleep(MEDIA_DELAY_SAMPLE_S * 1.5)
            count, total = delay(samples)
            assert count >= 3, counts
            assert counts == sorted(counts)  # a histogram only grows
            assert 0.0 <= total <= DELAY_CEILING_S * count, (count, total)
            in_use = len([r for r in reader.participants() if r.user_id])
            assert 2 / slots <= rings(samples) <= min(1.0, in_use / slots)
            assert rings(samples, "mean") == rings(samples)  # one stream
            stream.terminate()
            await wait_for(lambda: not gw.streams, timeout_s=15)
        finally:
            reader.close()
        after = await scrape(gw)
        assert rings(after) == 0.0  # no live stream holds rings any more
        assert delay(after)[0] >= count  # observations stay counted after their stream ended
    finally:
        await gw.close()

"""When the app attaches a media follower, and the follower thread's lifecycle."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.config import GatewayConfig, SessionsConfig
from gateway.protocol import AudioParams, Codec, MediaParams, VideoParams
from gateway.shm import ShmConfig, ShmPublisher
from gateway.udp import UdpConfig
from gateway.video import FollowerThread, MediaFollower, VideoConfig, with_media_extras


def _factory(event: Any) -> Any:
    return object()


def test_no_video_and_no_udp_means_no_follower_at_all() -> None:
    audio_only = replace(GatewayConfig(), sessions=SessionsConfig(media_kinds=("audio", "transcript")))
    assert with_media_extras(_factory, audio_only, lambda: None) is _factory
    no_demux = replace(GatewayConfig(), video=VideoConfig(demux=False))
    assert with_media_extras(_factory, no_demux, lambda: None) is _factory
    with_udp = replace(audio_only, udp=UdpConfig(enabled=True))
    wrapped = with_media_extras(_factory, with_udp, lambda: None)
    assert wrapped is not _factory
    sink = wrapped(None)  # not a shared-memory sink: returned untouched, nothing to follow
    assert type(sink) is object


def test_follower_thread_runs_only_while_it_has_followers(prefix: str) -> None:
    params = MediaParams(audio=AudioParams(), video=VideoParams(codec=Codec.H264))
    pub = ShmPublisher("x-thread", config=ShmConfig(prefix=prefix), audio=params.audio, video=params.video)
    thread = FollowerThread(0.002)
    follower = MediaFollower(pub, video_cfg=VideoConfig(), params=params)
    thread.add(follower)
    assert thread._thread is not None and thread._thread.is_alive()
    pub.close()  # the stream ends: the follower drains, closes itself and leaves; the thread exits
    thread.join(5)
    assert follower.closed and thread._thread is None and thread.errors == 0

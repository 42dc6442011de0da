"""The faithful RTMS simulator ("plays Zoom"): signaling and media servers, webhooks, faults, load mode.

Usage (tests, benchmarks, ``gateway sim``)::

    async with Simulator(SimConfig(client_id=..., client_secret=..., webhook_url=..., webhook_secret=...)) as sim:
        stream = sim.create_stream()          # posts a signed meeting.rtms_started; sim.join_payload(stream)
        ...                                   # a client joins stream.signaling_url
        stream.abort_media("audio")           # faults: drop_signaling, pause/resume, terminate(reason),
        stream.terminate(6)                   # reject_next_signaling/media(status), inject(what), failover()
        stream.sent.audio_bytes(user_id)      # what was sent; stream.client: what the client did

Load mode: ``sim.start_load(pace="realtime"|"max")`` then ``sim.create_stream(load=True)``.
"""

from .server import INJECTIONS, PRODUCT_KINDS, ClientRecord, Faults, SentRecord, SimConfig, SimStream, Simulator
from .webhooks import Delivery, WebhookEmitter, build_signed_request

__all__ = [
    "INJECTIONS",
    "PRODUCT_KINDS",
    "ClientRecord",
    "Delivery",
    "Faults",
    "SentRecord",
    "SimConfig",
    "SimStream",
    "Simulator",
    "WebhookEmitter",
    "build_signed_request",
]

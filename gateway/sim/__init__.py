"""The faithful RTMS simulator ("plays Zoom"): signaling and media servers, webhooks, faults, load mode."""

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

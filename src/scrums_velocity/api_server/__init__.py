"""A faithful mock of the Scrums.com Tasks API with deterministic synthetic delivery data."""

from scrums_velocity.api_server.app import create_app
from scrums_velocity.api_server.faults import FAULT_KINDS, Knobs
from scrums_velocity.api_server.serve import InProcessTransport, free_port, serve_in_thread
from scrums_velocity.api_server.synth import Dataset, generate

__all__ = [
    "FAULT_KINDS",
    "Dataset",
    "InProcessTransport",
    "Knobs",
    "create_app",
    "free_port",
    "generate",
    "serve_in_thread",
]

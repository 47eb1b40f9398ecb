"""websockets is pinned to the major version the legs are tested with, and the parts of its
asyncio connection that `proxy.legs` builds on (not its public API) are still there.

A new websockets major may rename any of them with no notice: the pin keeps a fresh
install on the tested major, and these checks say which part moved when the pin is raised.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version
from websockets.asyncio.connection import Connection
from websockets.asyncio.messages import Assembler
from websockets.protocol import Protocol
from websockets.server import ServerProtocol

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def _websockets_requirement() -> Requirement:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    (requirement,) = (r for r in found if r.name == "websockets")
    return requirement


def test_websockets_is_capped_below_the_next_major() -> None:
    specifier = _websockets_requirement().specifier
    caps = [Version(s.version) for s in specifier if s.operator == "<"]
    assert caps, f"websockets{specifier} has no upper bound"
    floors = [Version(s.version) for s in specifier if s.operator == ">="]
    assert floors and max(caps) <= Version(f"{max(floors).major + 1}")  # one major only


def test_the_installed_websockets_is_the_pinned_one() -> None:
    installed = importlib.metadata.version("websockets")
    assert _websockets_requirement().specifier.contains(installed), installed


def test_the_connection_internals_the_legs_override_are_there() -> None:
    # Called by data_received for each parsed frame: the legs hand frames over here.
    assert callable(Connection.process_event)
    # The asyncio.Protocol callbacks the legs extend, and the writer fail() uses.
    for name in ("connection_made", "data_received", "connection_lost", "send_data"):
        assert callable(getattr(Connection, name)), name
    for name in ("pause_writing", "resume_writing"):
        assert callable(getattr(Connection, name)), name
    # The Sans-I/O calls the legs and the outbox make on `connection.protocol`.
    for name in ("send_ping", "send_text", "send_binary", "fail", "data_to_send"):
        assert callable(getattr(Protocol, name)), name
    assert ServerProtocol().close_rcvd is None  # the bridge reads the peer's close frame


async def test_a_connection_keeps_the_queues_the_legs_replace_as_attributes() -> None:
    # legs._slim_down swaps `recv_messages` (an Assembler, made in connection_made) and
    # `drain_waiters` for lighter stand-ins: both must still be plain attributes.
    connection = Connection(ServerProtocol())
    transport = _NullTransport()
    connection.connection_made(transport)
    assert isinstance(connection.recv_messages, Assembler)
    assert hasattr(connection, "drain_waiters")
    assert connection.transport is transport
    assert connection.protocol.state is not None


class _NullTransport(asyncio.Transport):
    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

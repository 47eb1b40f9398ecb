"""The component test client and the proxy endpoint: failures that explain themselves."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import pytest
from websockets.exceptions import ConnectionClosed

from harness.client import ComponentClient
from harness.endpoint import ProxyEndpoint
from harness.mock_openai import MockRealtime


async def test_a_failed_wait_shows_each_error_in_full_and_how_the_connection_closed(
    mock_openai: MockRealtime, connect_component: Callable[..., Awaitable[ComponentClient]]
) -> None:
    mock_openai.on_connect().close(1011, "overloaded")
    component_client = await connect_component()
    with contextlib.suppress(ConnectionClosed):  # the proxy may have closed it already
        await component_client.send_settings()
    await component_client.wait_closed()
    with pytest.raises(AssertionError) as failure:
        await component_client.wait_for("SettingsApplied", timeout=0.1)
    message = str(failure.value)
    (error,) = component_client.received("Error")
    assert f"[{error['code']}] {error['description']}" in message
    assert "connection closed with 1011" in message
    assert "expected 1 x SettingsApplied within 0.1s, got 0" in message


async def test_wait_idle_waits_for_sessions_and_names_the_ones_left(
    mock_openai: MockRealtime, proxy: ProxyEndpoint
) -> None:
    client = await ComponentClient.connect(proxy.url)
    await client.start()
    with pytest.raises(AssertionError, match="1 proxy session"):
        await proxy.wait_idle(timeout=0.2)
    await client.close()
    await proxy.wait_idle()

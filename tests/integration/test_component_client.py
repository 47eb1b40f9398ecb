"""The component test client and the proxy endpoint: failures that explain themselves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from harness.client import ComponentClient
from harness.endpoint import ProxyEndpoint
from harness.mock_openai import MockRealtime
from tests.docs_examples import PROJECT_INI


async def test_a_failed_wait_shows_each_error_in_full_and_how_the_connection_closed(
    mock_openai: MockRealtime, connect_component: Callable[..., Awaitable[ComponentClient]]
) -> None:
    mock_openai.on_connect().close(1011, "overloaded")
    component_client = await connect_component()
    await component_client.wait_closed()  # the proxy reports why and closes, unasked
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


async def test_frames_a_voice_agent_client_would_not_understand_fail_the_check() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    from harness.client import ComponentClient

    async def careless_proxy(connection: ServerConnection) -> None:
        await connection.send('{"type": "Welcome", "request_id": 5}')
        await connection.send('{"type": "SettingsApplied", "extra": true}')
        await connection.send('{"type": "Transcript", "transcript": "hi", "is_final": true, '
                              '"speech_final": true}')  # fmt: skip
        await connection.wait_closed()

    async with serve(careless_proxy, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        why = "this test calls check() itself, to read its report"
        url = f"ws://127.0.0.1:{port}"
        async with await ComponentClient.connect(url, invalid_frames_expected=why) as client:
            await client.wait_for("Transcript")
    with pytest.raises(AssertionError) as failure:
        client.check()
    report = str(failure.value)
    assert "2 frame(s)" in report  # Transcript is not v1, but the component needs it
    assert "invalid Welcome" in report and "request_id" in report
    assert "unknown field(s) extra" in report


async def test_every_client_fails_its_test_on_an_invalid_frame_when_its_connection_ends() -> None:
    """Not only the fixtures' clients: `close()` (an `async with`'s end) and
    `wait_closed()` raise the oracle's report, once, in the test that made the client."""
    from websockets.asyncio.server import ServerConnection, serve

    async def careless_proxy(connection: ServerConnection) -> None:
        await connection.send('{"type": "Welcome"}')
        if await connection.recv() == "close":
            await connection.close()
        await connection.wait_closed()

    async with serve(careless_proxy, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        with pytest.raises(AssertionError, match="invalid Welcome: request_id"):
            async with await ComponentClient.connect(url) as client:
                await client.wait_for("Welcome")
                await client.send_raw("stay")
        await client.close()  # reported once: closing again is quiet

        closed_by_peer = await ComponentClient.connect(url)
        await closed_by_peer.wait_for("Welcome")
        await closed_by_peer.send_raw("close")
        with pytest.raises(AssertionError, match="1 frame"):
            await closed_by_peer.wait_closed()
        await closed_by_peer.close()

        why = "this test expects the invalid Welcome"
        async with await ComponentClient.connect(url, invalid_frames_expected=why) as allowed:
            await allowed.wait_for("Welcome")
        assert len(allowed.protocol_faults) == 1  # still seen; not raised
        with pytest.raises(AssertionError):
            allowed.check()


def test_a_client_left_open_is_checked_when_the_test_ends(pytester: pytest.Pytester) -> None:
    pytester.makeini(PROJECT_INI)
    pytester.makepyfile(
        test_left_open="""
        from websockets.asyncio.server import serve
        from harness.client import ComponentClient

        async def careless_proxy(connection):
            await connection.send('{"type": "Welcome"}')
            await connection.wait_closed()

        async def test_never_closes_its_client():
            async with serve(careless_proxy, "127.0.0.1", 0) as server:
                port = server.sockets[0].getsockname()[1]
                client = await ComponentClient.connect(f"ws://127.0.0.1:{port}")
                await client.wait_for("Welcome")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*a ComponentClient the test left open: the proxy sent 1 frame(s)*", "*invalid Welcome*"]
    )


async def test_the_fixture_connects_on_first_use_so_handshake_rules_apply(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    refused = mock_openai.on_connect().reject_handshake(401).once()
    assert not mock_openai.connections  # taking the fixture opened nothing yet
    assert await component_client.wait_closed() == 1011  # the first use connects
    assert refused.hits == 1
    assert component_client.received("Error")  # the proxy said why it closed


async def test_a_lazy_client_that_was_never_used_closes_quietly(proxy: ProxyEndpoint) -> None:
    client = ComponentClient.lazy(proxy.url)
    with pytest.raises(RuntimeError, match=r"await client.open\(\)"):
        _ = client.connection
    await client.close()
    client.check()


@pytest.mark.parametrize(("encoding", "faults"), [("linear16", 1), ("mulaw", 0)])
async def test_an_odd_length_linear16_frame_fails_the_check(encoding: str, faults: int) -> None:
    """A browser doing `new Int16Array(frame)` throws on it; G.711 has 1-byte samples."""
    from websockets.asyncio.server import ServerConnection, serve

    from harness.client import default_settings

    async def careless_proxy(connection: ServerConnection) -> None:
        await connection.recv()  # the Settings
        await connection.send(b"\x00" * 4800)
        await connection.send(b"\x00" * 4801)
        await connection.wait_closed()

    settings = default_settings()
    settings["audio"]["output"] = {"encoding": encoding, "sample_rate": 8000}
    async with serve(careless_proxy, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        why = "this test counts the faults itself"
        url = f"ws://127.0.0.1:{port}"
        async with await ComponentClient.connect(url, invalid_frames_expected=why) as client:
            await client.send_settings(settings)
            await client.wait_for_audio(9601)
    assert client.audio_frame_sizes == [4800, 4801]
    assert len(client.protocol_faults) == faults
    if faults:
        assert "4801 bytes holds no whole number of 2-byte samples" in client.protocol_faults[0]


async def test_the_default_settings_name_what_the_backend_uses_so_nothing_is_warned(
    mock_openai: MockRealtime, component_client: ComponentClient
) -> None:
    await component_client.start()
    assert component_client.types()[:2] == ["Welcome", "SettingsApplied"]
    assert not component_client.received("Warning")

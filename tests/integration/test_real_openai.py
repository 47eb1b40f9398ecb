"""Our proxy against the real OpenAI Realtime API: the only tests allowed to skip.

They run whenever OPENAI_API_KEY is set (they cost a few cents). The rest of the
integration suite can also be pointed at the real API with `--upstream=openai`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from harness.client import ComponentClient
from harness.pytest_plugin import OPENAI_REALTIME_URL, ProxyEndpoint

pytestmark = pytest.mark.skipif(
    not os.environ.get("OPENAI_API_KEY"), reason="needs a real OPENAI_API_KEY"
)


@pytest.fixture
def real_proxy(proxy_factory: Callable[..., ProxyEndpoint]) -> ProxyEndpoint:
    return proxy_factory(
        upstream_url=os.environ.get("OPENAI_REALTIME_URL", OPENAI_REALTIME_URL),
        api_key=os.environ["OPENAI_API_KEY"],
    )


async def test_real_text_turn(real_proxy: ProxyEndpoint) -> None:
    async with await ComponentClient.connect(real_proxy.url) as client:
        await client.start(greeting="Hello!")
        await client.inject("Reply with the single word: ready")
        reply = await client.wait_for(
            "ConversationText",
            where=lambda m: m["role"] == "assistant" and m["content"] != "Hello!",
            timeout=30,
        )
        assert reply["content"]
        await client.wait_for("AgentAudioDone", timeout=30)
        assert client.audio and not client.received("Error")


async def test_real_api_rejects_a_wrong_key_with_a_clear_error(
    proxy_factory: Callable[..., ProxyEndpoint],
) -> None:
    endpoint = proxy_factory(upstream_url=OPENAI_REALTIME_URL, api_key="sk-not-a-real-key-000")
    async with await ComponentClient.connect(endpoint.url) as client:
        error = await client.wait_for("Error", timeout=20)
        assert error["code"] in ("upstream_auth_failed", "invalid_api_key")
        assert "sk-not-a-real" not in error["description"]

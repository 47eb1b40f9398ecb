"""Which function endpoints the proxy may call (the SSRF guard of server-side functions)."""

from __future__ import annotations

import pytest

from proxy.function_calls import endpoint_allowed


@pytest.mark.parametrize(
    ("url", "allowed", "expected"),
    [
        ("https://api.example.com/weather", ["api.example.com"], True),
        ("http://api.example.com/weather", ["api.example.com"], True),
        ("https://API.Example.com./weather", ["api.example.com"], True),
        ("https://api.example.com:8443/x", ["api.example.com"], False),  # not the default port
        ("https://api.example.com:8443/x", ["api.example.com:8443"], True),
        ("http://api.example.com:8443/x", ["api.example.com:8443"], True),
        ("https://other.example.com/", ["api.example.com"], False),
        ("https://api.example.com.evil/", ["api.example.com"], False),
        ("https://evil@api.example.com/", ["api.example.com"], False),  # user info: refused
        ("https://api.example.com@evil/", ["api.example.com"], False),
        ("ftp://api.example.com/", ["api.example.com"], False),
        ("https://api.example.com/fn/weather", ["https://api.example.com/fn/"], True),
        ("https://api.example.com/admin", ["https://api.example.com/fn/"], False),
        ("http://api.example.com/fn/weather", ["https://api.example.com/fn/"], False),
        ("http://127.0.0.1:9000/x", ["127.0.0.1:9000"], True),
        ("http://127.0.0.1:9001/x", ["127.0.0.1:9000"], False),
        ("http://[::1]:9000/x", ["[::1]:9000"], True),
        ("http://api.example.com:notaport/", ["api.example.com"], False),
        ("https://api.example.com/", [], False),
    ],
)
def test_endpoint_allowed(url: str, allowed: list[str], expected: bool) -> None:
    assert endpoint_allowed(url, allowed) is expected

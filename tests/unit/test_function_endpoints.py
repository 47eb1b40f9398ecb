"""Which function endpoints the proxy may call, and exactly what it sends (the SSRF guard
of server-side functions): allow-list entries, URL normalisation, methods, headers, size."""

from __future__ import annotations

import pytest

from proxy.config import ProxyConfig
from proxy.function_policy import (
    EndpointForbidden,
    EndpointRefused,
    FunctionEndpointPolicy,
    FunctionRequest,
    escaped_size,
    forwardable_header,
    http_method,
    parse_rule,
)


def prepare(
    url: str,
    allowed: list[str],
    *,
    method: str | None = None,
    headers: dict[str, str] | None = None,
    arguments: str = '{"city": "Paris"}',
    methods: tuple[str, ...] = ("POST",),
    allow_headers: tuple[str, ...] = (),
) -> FunctionRequest:
    policy = FunctionEndpointPolicy.from_options(allowed, methods, allow_headers)
    return policy.prepare(url, method, headers, arguments)


def verdict(url: str, allowed: list[str]) -> str:
    try:
        prepare(url, allowed)
    except EndpointForbidden:
        return "forbidden"
    except EndpointRefused:
        return "refused"
    return "allowed"


@pytest.mark.parametrize(
    ("url", "allowed", "expected"),
    [
        ("https://api.example.com/weather", ["api.example.com"], "allowed"),
        ("http://api.example.com/weather", ["api.example.com"], "allowed"),
        ("https://API.Example.com./weather", ["api.example.com"], "allowed"),
        ("https://api.example.com:8443/x", ["api.example.com"], "forbidden"),  # not the default
        ("https://api.example.com:8443/x", ["api.example.com:8443"], "allowed"),
        ("http://api.example.com:8443/x", ["api.example.com:8443"], "allowed"),
        ("https://api.example.com/x", ["api.example.com:80"], "forbidden"),  # :80 means 80
        ("http://api.example.com/x", ["api.example.com:80"], "allowed"),
        ("https://other.example.com/", ["api.example.com"], "forbidden"),
        ("https://api.example.com.evil/", ["api.example.com"], "forbidden"),
        ("ftp://api.example.com/", ["api.example.com"], "refused"),
        ("https://api.example.com/fn/weather", ["https://api.example.com/fn/"], "allowed"),
        ("https://api.example.com/admin", ["https://api.example.com/fn/"], "forbidden"),
        ("http://api.example.com/fn/weather", ["https://api.example.com/fn/"], "forbidden"),
        ("http://127.0.0.1:9000/x", ["127.0.0.1:9000"], "allowed"),
        ("http://127.0.0.1:9001/x", ["127.0.0.1:9000"], "forbidden"),
        ("http://[::1]:9000/x", ["[::1]:9000"], "allowed"),
        ("http://[0:0::1]:9000/x", ["[::1]:9000"], "allowed"),  # one address, two spellings
        ("http://api.example.com:notaport/", ["api.example.com"], "refused"),
        ("https://api.example.com/", [], "forbidden"),
        # The attacks of issue 17 (finding 2), with http://h/functions allowed.
        ("http://h/functions", ["http://h/functions"], "allowed"),
        ("http://h/functions/weather", ["http://h/functions"], "allowed"),
        ("http://h/functions/../admin/delete-all", ["http://h/functions"], "forbidden"),
        ("http://h/functions/%2e%2e/admin", ["http://h/functions"], "forbidden"),
        ("http://h/functions/%2E%2e/admin", ["http://h/functions"], "forbidden"),
        ("http://h/functions/%2E%2e%2Fadmin", ["http://h/functions"], "refused"),
        ("http://h/functions/.%2e/admin", ["http://h/functions"], "forbidden"),
        ("http://h/functions/x/%2e%2e/y", ["http://h/functions"], "allowed"),  # stays inside
        ("http://h/functions-internal/x", ["http://h/functions"], "forbidden"),
        ("http://h/functionsx", ["http://h/functions"], "forbidden"),
        ("http://h/functions%2fadmin", ["http://h/functions"], "refused"),  # encoded slash
        ("http://h/functions\\..\\admin", ["http://h/functions"], "refused"),  # backslash
        ("http://h/functions/%5c..%5cadmin", ["http://h/functions"], "refused"),
        ("http://h/functions/%252e%252e/admin", ["http://h/functions"], "refused"),  # twice
        ("http://h/functions/..;/admin", ["http://h/functions"], "refused"),  # Tomcat's ..;
        ("http://h/functions/..%3b/admin", ["http://h/functions"], "refused"),
        ("http://h/functions/%2e%2e;x/admin", ["http://h/functions"], "refused"),
        ("http://h/functions/%zz", ["http://h/functions"], "refused"),
        ("http://h/functions/%00", ["http://h/functions"], "refused"),
        ("http://h/fun%63tions/x", ["http://h/functions"], "allowed"),  # %63 is c
        # User info and IP literals.
        ("https://evil@api.example.com/", ["api.example.com"], "refused"),
        ("https://api.example.com@evil/", ["api.example.com"], "refused"),
        ("https://api.example.com:x@evil/", ["api.example.com"], "refused"),
        ("http://2130706433:9000/", ["127.0.0.1:9000"], "forbidden"),  # 127.0.0.1 as a number
        ("http://0x7f.1:9000/", ["127.0.0.1:9000"], "forbidden"),
        ("http://127.1:9000/", ["127.0.0.1:9000"], "forbidden"),
        ("http://[::ffff:127.0.0.1]:9000/", ["127.0.0.1:9000"], "forbidden"),
        ("http://127.0.0.1:9000/", ["[::1]:9000"], "forbidden"),
        # Ports.
        ("http://h:80/functions", ["http://h/functions"], "allowed"),  # the default, spelt
        ("http://h:8080/functions", ["http://h/functions"], "forbidden"),
        ("http://h:99999/functions", ["http://h/functions"], "refused"),
        # What httpx itself refuses: a clean refusal, never an exception.
        ("http://h/functions/\x01", ["http://h/functions"], "refused"),
        ("http://h\x00/functions", ["http://h/functions"], "refused"),
        ("http://h/functions/" + "a" * 9000, ["http://h/functions"], "refused"),
        ("/functions/x", ["http://h/functions"], "refused"),
        ("h/functions/x", ["http://h/functions"], "refused"),
    ],
)
def test_endpoints_allowed_forbidden_or_refused(
    url: str, allowed: list[str], expected: str
) -> None:
    assert verdict(url, allowed) == expected


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("http://h/functions/x/../y", "http://h/functions/y"),
        ("http://h/functions/x/%2e%2e/y", "http://h/functions/y"),
        ("http://h/functions/./%7euser", "http://h/functions/~user"),
        ("http://h/functions/a%3fb#frag", "http://h/functions/a%3Fb"),  # no fragment sent
        ("http://h:80/functions", "http://h/functions"),
    ],
)
def test_the_checked_url_is_the_normalised_one_that_is_sent(url: str, sent: str) -> None:
    request = prepare(url, ["http://h/functions"])
    assert str(request.url) == sent


@pytest.mark.parametrize(
    ("entry", "scheme", "host", "port", "path"),
    [
        ("api.example.com", None, "api.example.com", None, "/"),
        ("API.Example.COM.", None, "api.example.com", None, "/"),
        ("api.example.com:8443", None, "api.example.com", 8443, "/"),
        ("api.example.com:80", None, "api.example.com", 80, "/"),
        ("[::1]:9000", None, "::1", 9000, "/"),
        ("http://h/functions", "http", "h", None, "/functions"),
        ("https://h:8443/fn/", "https", "h", 8443, "/fn/"),
        ("HTTPS://h", "https", "h", None, "/"),
    ],
)
def test_allow_list_entries(
    entry: str, scheme: str | None, host: str, port: int | None, path: str
) -> None:
    rule = parse_rule(entry)
    assert (rule.scheme, rule.host, rule.port, rule.path) == (scheme, host, port, path)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("host/path", "needs a scheme"),  # read as the whole host before
        ("h/functions", "needs a scheme"),
        ("h\\functions", "needs a scheme"),
        ("user@h", "needs a scheme"),
        ("ftp://h", "only http:// and https://"),
        ("http://user@h/", "user info"),
        ("http://h/fn?x=1", "no query"),
        ("http://h/fn#x", "no query"),
        ("h:0", "port"),
        ("h:99999", "port"),
        ("h:port", "port"),
        ("*.example.com", "wildcard"),
        ("", "not a host"),
        ("h h", "not a host"),
        ("http://h/fn/%2f", "encoded"),
        ("http://h\x01/", "not a valid URL"),
    ],
)
def test_allow_list_entries_that_do_not_parse_are_errors(entry: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_rule(entry)
    with pytest.raises(ValueError):
        FunctionEndpointPolicy.from_options([entry])


# ------------------------------------------------------------------ methods


def test_post_is_the_only_method_by_default() -> None:
    assert prepare("http://h/fn", ["h"]).method == "POST"
    assert prepare("http://h/fn", ["h"], method="post").method == "POST"
    for method in ("GET", "DELETE", "PUT", "PATCH"):
        with pytest.raises(EndpointRefused, match="not allowed"):
            prepare("http://h/fn", ["h"], method=method)


def test_allowed_methods_come_from_the_operator() -> None:
    request = prepare("http://h/fn", ["h"], method="get", methods=("GET", "POST"))
    assert request.method == "GET" and request.content is None
    assert request.url.params["city"] == "Paris"  # GET carries the arguments in the query
    with pytest.raises(EndpointRefused):
        prepare("http://h/fn", ["h"], method="TRACE", methods=("GET", "POST"))
    with pytest.raises(ValueError):
        http_method("TRACE")


def test_get_query_values_that_are_not_strings_are_json() -> None:
    arguments = '{"city": "Paris", "days": 3, "metric": true, "at": null, "tags": ["a", "b"]}'
    request = prepare("http://h/fn", ["h"], method="GET", methods=("GET",), arguments=arguments)
    assert dict(request.url.params) == {
        "city": "Paris",
        "days": "3",
        "metric": "true",
        "at": "null",
        "tags": '["a","b"]',
    }


def test_a_get_whose_arguments_make_the_url_too_long_is_refused() -> None:
    arguments = '{"q": "' + "x" * 9000 + '"}'
    with pytest.raises(EndpointRefused, match="longer than"):
        prepare("http://h/fn", ["h"], method="GET", methods=("GET",), arguments=arguments)


# ------------------------------------------------------------------ headers


def test_no_header_of_the_definition_is_sent_by_default() -> None:
    headers = {
        "Authorization": "Bearer stolen",
        "Cookie": "session=1",
        "X-Forwarded-For": "10.0.0.1",
        "X-Api-Key": "k",
        "Content-Type": "text/plain",
    }
    request = prepare("http://h/fn", ["h"], headers=headers)
    assert request.headers == (("Content-Type", "application/json"),)
    assert set(request.dropped_headers) == set(headers)


def test_headers_the_operator_allows_are_sent() -> None:
    headers = {"X-Api-Key": "k", "Authorization": "Bearer t", "Cookie": "c=1"}
    allowed = ("x-api-key", "authorization", "cookie")  # the operator's explicit choice
    request = prepare("http://h/fn", ["h"], headers=headers, allow_headers=allowed)
    assert dict(request.headers) == {**headers, "Content-Type": "application/json"}
    assert request.dropped_headers == ()


def test_header_names_that_differ_only_in_case_are_sent_once() -> None:
    headers = {"X-Api-Key": "first", "x-api-key": "second", "X-API-KEY": "third"}
    request = prepare("http://h/fn", ["h"], headers=headers, allow_headers=("x-api-key",))
    assert request.headers == (("X-Api-Key", "first"), ("Content-Type", "application/json"))
    assert request.dropped_headers == ("x-api-key", "X-API-KEY")


def test_header_allow_list_refuses_routing_and_framing_headers() -> None:
    for name in ("Host", "Content-Length", "Transfer-Encoding", "Connection", "TE", "Upgrade"):
        with pytest.raises(ValueError, match="the proxy sets it"):
            forwardable_header(name)
    with pytest.raises(ValueError, match="not a header name"):
        forwardable_header("X Bad")
    assert forwardable_header(" Authorization ") == "authorization"  # explicit: allowed


@pytest.mark.parametrize("value", ["a\r\nHost: evil", "a\nb", "nul\x00", "caf\u00e9"])
def test_a_header_value_that_could_inject_is_refused(value: str) -> None:
    with pytest.raises(EndpointRefused, match="cannot be sent"):
        prepare("http://h/fn", ["h"], headers={"X-Api-Key": value}, allow_headers=("x-api-key",))


# ------------------------------------------------------------------ answer size


def test_the_answer_is_capped_as_it_is_sent_json_escaped() -> None:
    policy = FunctionEndpointPolicy.from_options(["h"], max_answer_bytes=1000)
    assert escaped_size("\x01" * 100) == 600  # \u0001: six bytes for one
    assert policy.answer_refused("a" * 1000) is None
    assert policy.answer_refused("a" * 1001) is not None
    refused = policy.answer_refused("\x01" * 200)  # 200 bytes raw, 1200 sent
    assert refused is not None and "1200" in refused
    assert policy.answer_refused('"' * 501) is not None  # \" is two bytes


def test_a_config_with_an_entry_that_does_not_parse_fails_at_start() -> None:
    with pytest.raises(ValueError, match="needs a scheme"):
        ProxyConfig(function_hosts=frozenset({"api.example.com/functions"}))
    with pytest.raises(ValueError, match="the proxy sets it"):
        ProxyConfig(function_headers=frozenset({"Host"}))
    config = ProxyConfig(function_hosts=frozenset({"http://h/functions"}))
    assert config.session_options().functions.rules == (parse_rule("http://h/functions"),)

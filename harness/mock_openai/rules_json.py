"""Rules written as JSON: the Python scripting API, for any language.

One rule is an object: a trigger, optional conditions, the steps (each named after the
`Rule` method it calls, with that method's arguments), and optionally how often it must
fire (named after the `Rule` method too)::

    {"on": "user_text", "text": "weather",
     "do": [{"stall": 200}, {"reply_with_audio": {"text": "It is sunny.", "chunks": 3}}],
     "once": true}

==================  =============================================================
``on``              ``user_text`` (``text``: a substring, or ``{"regex": "..."}``),
                    ``user_speech`` (``phrase``: words it must hear),
                    ``function_output`` (``name``),
                    ``client_event`` (``type``; ``where``: a JSON pattern the event
                    contains), ``connect``
``do``              a list of ``{method: arguments}``: arguments are an object
                    (keyword arguments), a list (positional) or one value (the first
                    argument). Methods: ``reply_with_audio``, ``reply_with_text``,
                    ``reply_only_in_response_done``, ``fail_response``,
                    ``call_function``, ``transcribe_as``, ``send_error``,
                    ``server_error``, ``send_event``, ``send_unvalidated_event``,
                    ``send_garbage`` (a string, or
                    ``{"binary_base64": "..."}``), ``stall``, ``close``,
                    ``reject_handshake``
how often           at most one of ``"once": true``, ``"times": n``,
                    ``"at_most": n``, ``"at_least": n``, ``"optional": true``
                    (default: at least once)
==================  =============================================================

Everything the Python API scripts is here except what cannot travel as data: callable
responders and Python predicates (a ``where`` pattern replaces the latter). A batch is
added whole or not at all.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from .patterns import EventFilter
from .rules import Rule, TextMatcher

__all__ = ["RULE_STEPS", "RuleTriggers", "rules_from_json"]


class RuleTriggers(Protocol):
    """What JSON rules are added to: the triggers of `MockRealtime` (which calls
    `rules_from_json` itself, so this module does not import it)."""

    def on_user_text(self, text: TextMatcher = None) -> Rule: ...
    def on_user_speech(self, phrase: str | None = None) -> Rule: ...
    def on_function_output(self, name: str | None = None) -> Rule: ...
    def on_client_event(self, type: str, where: EventFilter | None = None) -> Rule: ...
    def on_connect(self) -> Rule: ...


#: The `Rule` methods a JSON rule may call in ``do``.
RULE_STEPS: Final = frozenset(
    {
        "reply_with_audio",
        "reply_with_text",
        "reply_only_in_response_done",
        "fail_response",
        "call_function",
        "transcribe_as",
        "send_error",
        "server_error",
        "send_event",
        "send_unvalidated_event",
        "send_garbage",
        "stall",
        "close",
        "reject_handshake",
    }
)
_COUNTS: Final = ("once", "times", "at_most", "at_least", "optional")
_TRIGGER_KEYS: Final[dict[str, frozenset[str]]] = {
    "user_text": frozenset({"text"}),
    "user_speech": frozenset({"phrase"}),
    "function_output": frozenset({"name"}),
    "client_event": frozenset({"type", "where"}),
    "connect": frozenset(),
}


def rules_from_json(mock: RuleTriggers, data: Any, *, source: str = "JSON") -> list[Rule]:
    """Add the rules in `data` (one rule, a list, or ``{"rules": [...]}``) to `mock`.

    Raises ValueError naming the rule and what is wrong; then none of them is added.
    """
    if isinstance(data, Mapping) and "rules" in data:
        data = data["rules"]
    specs = [data] if isinstance(data, Mapping) else data
    if not isinstance(specs, list):
        raise ValueError('expected a rule object, a list of rules, or {"rules": [...]}')
    added: list[Rule] = []
    try:
        for number, spec in enumerate(specs, 1):
            where = f"{source} rule #{number}"
            try:
                added.append(_rule(mock, spec, where))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}: {exc}") from exc
    except ValueError:
        for rule in added:
            rule.withdraw()
        raise
    return added


def _rule(mock: RuleTriggers, spec: Any, site: str) -> Rule:
    if not isinstance(spec, Mapping):
        raise ValueError(f"a rule is an object, not {type(spec).__name__}")
    trigger = spec.get("on")
    if trigger not in _TRIGGER_KEYS:
        raise ValueError(f"'on' must be one of {sorted(_TRIGGER_KEYS)}, not {trigger!r}")
    allowed = {"on", "do", *_COUNTS, *_TRIGGER_KEYS[trigger]}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} for an {trigger!r} rule")
    rule = _trigger(mock, trigger, spec)
    rule.site = site
    try:
        steps = spec.get("do", [])
        if not isinstance(steps, list):
            raise ValueError("'do' is a list of {method: arguments}")
        for step in steps:
            _add_step(rule, step)
        _set_count(rule, spec)
    except Exception:
        rule.withdraw()
        raise
    return rule


def _trigger(mock: RuleTriggers, trigger: str, spec: Mapping[str, Any]) -> Rule:
    if trigger == "user_text":
        text = spec.get("text")
        if isinstance(text, Mapping):
            if set(text) != {"regex"}:
                raise ValueError('\'text\' is a string or {"regex": "..."}')
            return mock.on_user_text(re.compile(str(text["regex"])))
        if text is not None and not isinstance(text, str):
            raise ValueError('\'text\' is a string or {"regex": "..."}')
        return mock.on_user_text(text)
    if trigger == "user_speech":
        phrase = spec.get("phrase")
        if phrase is not None and not isinstance(phrase, str):
            raise ValueError("'phrase' is a string")
        return mock.on_user_speech(phrase)
    if trigger == "function_output":
        name = spec.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError("'name' is a string")
        return mock.on_function_output(name)
    if trigger == "client_event":
        event_type = spec.get("type")
        if not isinstance(event_type, str):
            raise ValueError("a client_event rule needs 'type' (a string)")
        where = spec.get("where")
        if where is not None and not isinstance(where, Mapping):
            raise ValueError("'where' is a JSON pattern (an object)")
        return mock.on_client_event(event_type, where=where)
    return mock.on_connect()


def _add_step(rule: Rule, step: Any) -> None:
    if not isinstance(step, Mapping) or len(step) != 1:
        raise ValueError(f"a step is one {{method: arguments}} object, not {step!r}")
    ((name, arguments),) = step.items()
    if name not in RULE_STEPS:
        raise ValueError(f"unknown step {name!r}; steps are {sorted(RULE_STEPS)}")
    if name == "send_garbage" and isinstance(arguments, Mapping) and "binary_base64" in arguments:
        arguments = [base64.b64decode(str(arguments["binary_base64"]))]
    method: Callable[..., Rule] = getattr(rule, name)
    _call(method, name, arguments)


def _set_count(rule: Rule, spec: Mapping[str, Any]) -> None:
    given = [key for key in _COUNTS if key in spec]
    if len(given) > 1:
        raise ValueError(f"say how often once, not {given}")
    if not given:
        return
    key = given[0]
    value = spec[key]
    if key in ("once", "optional"):
        if value is not True:
            raise ValueError(f"{key!r} takes true")
        getattr(rule, key)()
    else:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{key!r} takes a whole number")
        getattr(rule, key)(value)


def _call(method: Callable[..., Rule], name: str, arguments: Any) -> None:
    try:
        if isinstance(arguments, Mapping) and name != "send_event":
            method(**arguments)
        elif isinstance(arguments, list):
            method(*arguments)
        elif arguments is None and name in ("close", "reject_handshake", "send_garbage"):
            method()
        else:
            method(arguments)
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from exc

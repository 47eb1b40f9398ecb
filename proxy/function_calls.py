"""Function calls, the core part: the ledger of calls and who answers each.

A call the model makes is answered by the client (a `FunctionCallRequest` with
`client_side: true`), or by the proxy when the function's definition names an endpoint
the operator allows (`client_side: false`: the proxy asks the network shell to send the
checked request with a `CallEndpoint` action, and the shell answers with
`function_result`). The ledger (`PendingCalls`) says when the follow-up response is due:
once every call of a response has its output. Calls cancelled by barge-in keep their
output in the conversation when it comes, but nothing answers them. No I/O: the HTTP
call is the shell's (`proxy.function_http`).
"""

from __future__ import annotations

import orjson

from . import translate
from .actions import Action, CallEndpoint
from .bounds import MAX_SERVER_CALLS
from .client_messages import FunctionCallResponse
from .errors import ErrorCode, WarningCode
from .function_endpoints import EndpointForbidden, EndpointRefused, EndpointRequest
from .pending_calls import FULL, PendingCall
from .response_gate import ANSWER
from .server_messages import FunctionCallCancelled, FunctionRef
from .server_messages import FunctionCallResponse as FunctionCallResult_ToClient
from .session_state import SessionState
from .upstream_events import FunctionArgumentsDone
from .validation import shown

__all__ = ["FunctionCalls"]


class FunctionCalls(SessionState):
    """The call ledger and the endpoint decision (see the module docstring)."""

    __slots__ = ()

    def function_result(
        self, call_id: str, output: str | None, failure: str | None
    ) -> list[Action]:
        """A server-side function endpoint answered (`output`) or failed (`failure`)."""
        if self.closed or call_id in self._calls.cancelled:
            return []
        self._server_call_done(call_id, output, failure)
        return self._take()

    def _server_call_done(self, call_id: str, output: str | None, failure: str | None) -> None:
        call, follow_up = self._calls.answered(call_id)
        name, arguments = (call.name, call.arguments) if call is not None else ("", "")
        if output is not None:  # capped as it is sent: JSON-escaped
            failure = self.options.functions.answer_refused(output)
        if failure is not None:
            self._error(ErrorCode.FUNCTION_ENDPOINT_FAILED, f"function {shown(name)}: {failure}")
            output = orjson.dumps({"error": failure}).decode()
        assert output is not None
        self._to_client(FunctionCallResult_ToClient(id=call_id, name=name, content=output))
        self._function_history(call_id, name, arguments, output, client_side=False)
        self._upstream(translate.function_output_item(call_id, output))
        self._turn_ended()
        if call is None or follow_up:
            # The response a result asks for is a turn: a call that calls again is a loop.
            if self._turn_bucket.take(self._clock()):
                self._ask(ANSWER)
            else:
                self._error(
                    ErrorCode.RATE_LIMITED,
                    f"function {shown(name)}: its result is in the conversation, but no "
                    f"response was asked for: more than {self.options.turn_rate:g} turns a second",
                )
        self._leave_if_quiet()

    def _on_function_response(self, message: FunctionCallResponse) -> None:
        call_id = message.id
        if call_id is None:  # v1 allows it: the pending call of that name is meant
            call_id = self._calls.named(message.name)
            if call_id is None:
                self._error(
                    ErrorCode.INVALID_MESSAGE,
                    "FunctionCallResponse without id matches no pending call of "
                    + shown(message.name),
                )
                return
        if call_id in self._calls.server_side_ids:  # upstream must get one output per call
            self._error(
                ErrorCode.INVALID_MESSAGE,
                f"FunctionCallResponse for {shown(call_id)} refused: that call is server-side "
                "(client_side false), the proxy answers it",
            )
            return
        call, follow_up = self._calls.answered(call_id)
        name, arguments = (call.name, call.arguments) if call is not None else (message.name, "")
        self._function_history(call_id, name, arguments, message.content, client_side=True)
        self._upstream(translate.function_output_item(call_id, message.content))
        if call_id in self._calls.cancelled:
            return  # kept in the conversation, but the user has moved on: no answer to it
        self._turn_ended()
        if call is None or follow_up:  # the other calls of its response still wait
            self._ask(ANSWER)

    def _cancel_pending_calls(self) -> None:
        cancelled = self._calls.cancel_all()
        if not cancelled:
            return
        refs = [FunctionRef(id=call.call_id, name=call.name) for call in cancelled]
        self._to_client(FunctionCallCancelled(functions=refs))

    def _on_function_call(self, event: FunctionArgumentsDone) -> None:
        call_id = event.call_id
        if not self._calls.first_report(call_id):
            return
        response_id = event.response_id or self.gate.response_id or ""
        request = self._endpoint_request(event.name, event.arguments)
        server_side = request is not None
        call = PendingCall(call_id, event.name, event.arguments, response_id, server_side)
        if not self._calls.add(call):
            request = FULL  # answered at once: the model is not left waiting
        if request is None:
            self._to_client(
                translate.function_call_request(
                    call_id, event.name, event.arguments, client_side=True
                )
            )
        else:
            self._server_call(call_id, event.name, event.arguments, request)

    def _endpoint_request(self, name: str, arguments: str) -> EndpointRequest | str | None:
        """How a call is answered: by the proxy with this HTTP request, by the proxy with
        this failure (the model gets it as the output), or by the client (None)."""
        definition = self._function(name)
        endpoint = definition.endpoint if definition else None
        if endpoint is None or not endpoint.url:
            return None
        try:
            return self.options.functions.prepare(
                endpoint.url, endpoint.method, endpoint.headers, arguments
            )
        except EndpointForbidden as exc:
            self._warn(
                WarningCode.FUNCTION_ENDPOINT_FORBIDDEN,
                f"function {shown(name)}: {exc} by the operator; the call goes to the client",
            )
            return None
        except EndpointRefused as exc:
            return str(exc)

    def _server_call(
        self, call_id: str, name: str, arguments: str, request: EndpointRequest | str
    ) -> None:
        """The proxy answers this call: with `request`'s answer, or the failure given."""
        self._to_client(
            translate.function_call_request(call_id, name, arguments, client_side=False)
        )
        if isinstance(request, str):
            self._server_call_done(call_id, None, request)
        elif self._calls.server_side() > MAX_SERVER_CALLS:
            self._server_call_done(call_id, None, "too many calls in flight")
        else:
            if request.dropped_headers:
                self._warn(
                    WarningCode.SETTING_IGNORED,
                    f"function {shown(name)}: headers the operator does not allow were not sent: "
                    + shown(", ".join(request.dropped_headers)),
                )
            self._out.append(CallEndpoint(call_id, name, request))

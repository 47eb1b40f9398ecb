// A JavaScript suite using the mock through its admin API, as a component's own tests
// would: rules in, the component talks to the proxy, the journal and verdict out.
// Run by tests/integration/test_mock_from_javascript.py with MOCK_ADMIN_URL and PROXY_URL
// (node --experimental-websocket --test: Node 20 has no global WebSocket without it).
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";

import { MockRealtimeAdmin } from "../../harness/js/mock-realtime-admin.mjs";

const mock = new MockRealtimeAdmin(process.env.MOCK_ADMIN_URL);
const PROXY_URL = process.env.PROXY_URL;

const SETTINGS = {
  type: "Settings",
  audio: {
    input: { encoding: "linear16", sample_rate: 16000 },
    output: { encoding: "linear16", sample_rate: 24000 },
  },
  agent: {
    think: { provider: { type: "open_ai", model: "gpt-4o-mini" }, prompt: "Be brief." },
    speak: { provider: { type: "open_ai", voice: "alloy" } },
  },
};

/** A minimal component: JSON messages and audio bytes in, waits on what arrives. */
function connectComponent(url) {
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const component = { messages: [], audioBytes: 0, audioFrames: [], closeCode: null, waiters: [] };
  const wake = () => component.waiters.forEach((check) => check());
  socket.onmessage = ({ data }) => {
    if (typeof data === "string") component.messages.push(JSON.parse(data));
    else {
      component.audioBytes += data.byteLength;
      component.audioFrames.push(data.byteLength);
    }
    wake();
  };
  socket.onclose = ({ code }) => {
    component.closeCode = code;
    wake();
  };
  component.send = (message) => socket.send(JSON.stringify(message));
  component.close = () => socket.close(1000);
  component.waitFor = (type, where = () => true, timeoutMs = 5000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no ${type}; got ${component.messages.map((m) => m.type)}`)),
        timeoutMs,
      );
      const check = () => {
        const found = component.messages.find((m) => m.type === type && where(m));
        if (found || component.closeCode !== null) {
          clearTimeout(timer);
          component.waiters = component.waiters.filter((c) => c !== check);
          found ? resolve(found) : reject(new Error(`closed with ${component.closeCode} before ${type}`));
        }
      };
      component.waiters.push(check);
      check();
    });
  return new Promise((resolve, reject) => {
    socket.onopen = () => resolve(component);
    socket.onerror = () => reject(new Error(`cannot connect to ${url}`));
  });
}

beforeEach(() => mock.reset());

test("a scripted reply reaches the component through the proxy", async () => {
  await mock.addRules({
    on: "user_text",
    text: "weather",
    do: [{ reply_with_audio: { text: "Sunny in Paris.", chunks: 2 } }],
    once: true,
  });
  const component = await connectComponent(PROXY_URL);
  component.send(SETTINGS);
  await component.waitFor("SettingsApplied");
  component.send({ type: "InjectUserMessage", content: "weather in Paris?" });
  const reply = await component.waitFor("ConversationText", (m) => m.role === "assistant");
  assert.equal(reply.content, "Sunny in Paris.");
  await component.waitFor("AgentAudioDone");
  assert.equal(component.audioBytes, 2 * 4800);
  const item = await mock.waitFor("conversation.item.create", { where: { item: { role: "user" } } });
  assert.deepEqual(item.item.content, [{ type: "input_text", text: "weather in Paris?" }]);
  const [update] = await mock.received("session.update");
  assert.equal(update.session.instructions, "Be brief.");
  component.close();
  await mock.assertOk();
});

test("an upstream dying mid-answer reaches the component as an error and a close", async () => {
  await mock.addRules({
    on: "user_text",
    do: [{ reply_with_audio: { text: "This never ends.", chunks: 10, stop_after_events: 6 } }, { close: 1011 }],
  });
  const component = await connectComponent(PROXY_URL);
  component.send(SETTINGS);
  await component.waitFor("SettingsApplied");
  component.send({ type: "InjectUserMessage", content: "go on" });
  const error = await component.waitFor("Error");
  assert.equal(error.code, "upstream_closed");
  await new Promise((resolve) => (component.closeCode !== null ? resolve() : component.waiters.push(resolve)));
  assert.equal(component.closeCode, 1011);
  await mock.assertOk();
});

test("the real service by name: odd-length deltas, fields left out", async () => {
  await mock.leaveOut("response.output_audio.delta", "response_id");
  await mock.settings({ echo_metadata: false });
  await mock.addRules({
    on: "user_text",
    do: [{ reply_with_audio: { text: "Odd sizes.", chunks: 3, delta_bytes: 4801 } }],
    once: true,
  });
  const component = await connectComponent(PROXY_URL);
  component.send(SETTINGS);
  await component.waitFor("SettingsApplied");
  component.send({ type: "InjectUserMessage", content: "hi" });
  await component.waitFor("AgentAudioDone");
  assert.equal(component.audioBytes, 3 * 4800);
  assert.ok(component.audioFrames.every((size) => size % 2 === 0), `${component.audioFrames}`);
  const deltas = await mock.sent("response.output_audio.delta");
  assert.ok(deltas.every((delta) => !("response_id" in delta)));
  component.close();
  await mock.assertOk();
});

test("the verdict names a rule that never fired; a bad rule is refused", async () => {
  await mock.addRules({ on: "user_text", text: "never said", do: [{ reply_with_text: "x" }], once: true });
  const verdict = await mock.check();
  assert.equal(verdict.ok, false);
  assert.match(verdict.problems[0], /on_user_text\('never said'\).*expected to fire exactly once, but fired never/);
  await assert.rejects(mock.addRules({ on: "user_text", do: [{ dance: 1 }] }), /400 .*unknown step 'dance'/);
  await assert.rejects(mock.waitFor("response.cancel", { timeout: 0.1 }), /408 timed out.*the mock received/);
});

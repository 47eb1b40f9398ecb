// A client for the mock OpenAI Realtime's HTTP admin API, for JavaScript test suites
// (jest, vitest, node:test, Playwright). Node 18+ and browsers: it only needs fetch.
//
//   const mock = new MockRealtimeAdmin("http://127.0.0.1:8765/__admin");
//   await mock.reset();
//   await mock.addRules({ on: "user_text", text: "weather",
//                         do: [{ reply_with_audio: "It is sunny." }], once: true });
//   ... drive your component ...
//   await mock.waitFor("response.create");
//   await mock.assertOk();   // failures in the mock, rules that did not fire as said

export class MockRealtimeAdmin {
  /** @param {string} adminUrl  e.g. "http://127.0.0.1:8765/__admin" */
  constructor(adminUrl) {
    this.adminUrl = adminUrl.replace(/\/+$/, "");
  }

  /** Add rules (one, a list, or {rules: [...]}); resolves to their descriptions. */
  async addRules(rules) {
    return (await this.#call("POST", "rules", rules)).rules;
  }

  /** Every rule: {description, site, expected, hits, met}. */
  async rules() {
    return (await this.#call("GET", "rules")).rules;
  }

  /** Forget rules, journal, failures; close connections; back to the default behaviour. */
  async reset() {
    await this.#call("POST", "reset");
  }

  /** Client events received since the reset (of `type`, when given). */
  async received(type) {
    return (await this.#call("GET", type ? `received?type=${encodeURIComponent(type)}` : "received")).events;
  }

  /** Server events the mock sent since the reset (of `type`, when given). */
  async sent(type) {
    return (await this.#call("GET", type ? `sent?type=${encodeURIComponent(type)}` : "sent")).events;
  }

  /** The `count`-th client event of `type` containing the JSON pattern `where`. */
  async waitFor(type, { count = 1, timeout = 5, where } = {}) {
    return (await this.#call("POST", "wait", { type, count, timeout, where })).event;
  }

  /** The handshakes since the reset: {index, path, closed, close_code, ...}. */
  async connections() {
    return (await this.#call("GET", "connections")).connections;
  }

  /** The verdict: {ok, problems}. */
  async check() {
    return this.#call("GET", "check");
  }

  /** Throw an Error listing the problems, if there are any. */
  async assertOk() {
    const verdict = await this.check();
    if (!verdict.ok) throw new Error(`the mock found problems:\n${verdict.problems.join("\n")}`);
  }

  /** {strict, voice: "tone" | "speech", allow_invalid_client_events,
   *  session_lifetime (seconds), echo_metadata}. */
  async settings(settings) {
    return this.#call("POST", "settings", settings);
  }

  /** Send a server event now (validated by the mock). */
  async push(event) {
    await this.#call("POST", "push", event);
  }

  /** Send events of `type` without these (dotted) fields, as the service may. */
  async leaveOut(type, ...fields) {
    await this.#call("POST", "leave_out", { type, fields });
  }

  async closeConnections(code = 1011, reason = "") {
    await this.#call("POST", "close_connections", { code, reason });
  }

  /** Serve a recorded cassette (a path the mock can read). */
  async replay(cassette, speed = 1) {
    await this.#call("POST", "replay", { cassette, speed });
  }

  async #call(method, path, body) {
    const response = await fetch(`${this.adminUrl}/${path}`, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${answer.error}`);
    return answer;
  }
}

// The Deepgram Voice Agent protocol as the browser component speaks it: Settings first,
// user text only after SettingsApplied (queued until then), KeepAlive while connected,
// and a reconnect that carries the conversation so far as agent.context.messages.

const KEEPALIVE_MS = 5000;

export class VoiceAgent extends EventTarget {
  /**
   * @param {string} endpoint  proxy WebSocket URL
   * @param {object} options   {prompt, greeting, functions: [{name, description, parameters}],
   *                            keepAliveMs, inputRate, outputRate}
   */
  constructor(endpoint, options = {}) {
    super();
    this.endpoint = endpoint;
    this.options = options;
    this.status = "closed"; // closed | connecting | connected | error
    this.settingsApplied = false;
    this.history = []; // [{role, content}] from ConversationText, in order
    this.socket = null;
    this.pendingText = [];
    this.keepAliveTimer = null;
    this.ready = null;
  }

  /** Open the connection (if needed) and resolve once SettingsApplied arrived. */
  connect() {
    if (this.ready && this.status !== "closed" && this.status !== "error") return this.ready;
    this.ready = new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new WebSocket(this.endpoint);
      } catch (error) {
        this.#emit("log", `Cannot connect to ${this.endpoint}: ${error.message}`);
        this.#setStatus("error");
        this.#returnUnsent();
        reject(error);
        return;
      }
      socket.binaryType = "arraybuffer";
      this.socket = socket;
      this.#setStatus("connecting");
      socket.onopen = () => {
        this.#setStatus("connected");
        this.#send(this.#settings());
        this.#startKeepAlive();
      };
      socket.onmessage = (event) => {
        if (typeof event.data !== "string") {
          this.#emit("audio", event.data);
          return;
        }
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          this.#emit("log", `Unparseable message from proxy: ${event.data.slice(0, 80)}`);
          return;
        }
        if (message.type === "SettingsApplied") {
          this.settingsApplied = true;
          resolve();
          this.#flushPendingText();
        } else if (message.type === "ConversationText") {
          this.history.push({ role: message.role, content: message.content });
        }
        this.#emit("message", message);
      };
      socket.onerror = () => this.#emit("log", "WebSocket error");
      socket.onclose = (event) => {
        if (this.socket !== socket) return;
        const failed = this.status === "connecting";
        this.#stopKeepAlive();
        this.settingsApplied = false;
        this.socket = null;
        this.#setStatus(failed ? "error" : "closed", event);
        this.#returnUnsent();
        reject(new Error(`closed with ${event.code} ${event.reason}`.trim()));
      };
    });
    this.ready.catch(() => {}); // callers that care await it; the log shows the close
    return this.ready;
  }

  disconnect() {
    if (this.socket) this.socket.close(1000, "user stopped");
  }

  /** Send user text; before SettingsApplied it is queued, after a disconnect it
   * reconnects. If the connection fails first, an "unsent" event gives the text back. */
  sendText(text) {
    this.pendingText.push(text);
    if (this.settingsApplied) this.#flushPendingText();
    else this.connect();
  }

  sendAudio(frame) {
    if (this.settingsApplied) this.socket.send(frame);
  }

  /** Have the agent say `message` (Deepgram's InjectAgentMessage); `behavior` is
   * "default", "queue" or "interrupt". */
  injectAgentMessage(message, behavior) {
    this.#send({ type: "InjectAgentMessage", message, ...(behavior ? { behavior } : {}) });
  }

  sendFunctionResult(id, name, content) {
    this.#send({ type: "FunctionCallResponse", id, name, content });
  }

  /** Text still waiting when the connection failed or closed goes back to the page. */
  #returnUnsent() {
    if (!this.pendingText.length) return;
    const texts = this.pendingText;
    this.pendingText = [];
    this.#emit("unsent", texts);
  }

  #flushPendingText() {
    while (this.pendingText.length && this.settingsApplied) {
      this.#send({ type: "InjectUserMessage", content: this.pendingText.shift() });
    }
  }

  #settings() {
    const { prompt, greeting, functions = [] } = this.options;
    const agent = {
      listen: { provider: { type: "deepgram", model: "nova-3" } },
      think: {
        // The Realtime model the proxy's upstream uses; a chat model name (the
        // component's default) would be accepted with a Warning on every connection.
        provider: { type: "open_ai", model: "gpt-realtime" },
        prompt: prompt || "You are a helpful voice assistant. Keep answers short.",
      },
      speak: { provider: { type: "open_ai", model: "tts-1", voice: "alloy" } },
    };
    if (functions.length) agent.think.functions = functions;
    if (greeting) agent.greeting = greeting;
    if (this.history.length) {
      agent.context = {
        messages: this.history.map(({ role, content }) => ({ type: "History", role, content })),
      };
    }
    return {
      type: "Settings",
      audio: {
        input: { encoding: "linear16", sample_rate: this.options.inputRate ?? 16000 },
        output: { encoding: "linear16", sample_rate: this.options.outputRate ?? 24000 },
      },
      agent,
    };
  }

  #startKeepAlive() {
    const every = this.options.keepAliveMs ?? KEEPALIVE_MS;
    if (every > 0) this.keepAliveTimer = setInterval(() => this.#send({ type: "KeepAlive" }), every);
  }

  #stopKeepAlive() {
    clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = null;
  }

  #send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
      this.#emit("sent", message);
    }
  }

  #setStatus(status, closeEvent) {
    this.status = status;
    this.#emit("status", { status, code: closeEvent?.code, reason: closeEvent?.reason });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

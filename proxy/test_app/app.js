// Binds the VoiceAgent, microphone and speaker to the page. Every number a test reads
// is in the DOM under a data-testid named as in the dg_react_agent test-app.
import { VoiceAgent } from "./agent.js";
import { INPUT_RATE, OUTPUT_RATE, openMicrophone, Speaker } from "./audio.js";

const query = new URLSearchParams(location.search);
const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const clock = () => new Date().toISOString().substring(11, 19);

// ------------------------------------------------------------------ functions

const BUILT_IN_FUNCTIONS = {
  get_current_time: {
    definition: {
      name: "get_current_time",
      description: "The current date and time, optionally in an IANA time zone.",
      parameters: {
        type: "object",
        properties: { timezone: { type: "string", description: "e.g. Europe/Paris" } },
      },
    },
    handler: ({ timezone = "UTC" } = {}) => ({
      time: new Date().toLocaleString("en-US", { timeZone: timezone }),
      timezone,
    }),
  },
};
const functions = new Map(); // name -> {definition, handler}
for (const name of (query.get("functions") || "").split(",").filter(Boolean)) {
  if (BUILT_IN_FUNCTIONS[name]) functions.set(name, BUILT_IN_FUNCTIONS[name]);
}

// ------------------------------------------------------------------ state

// proxyEndpoint is a ws(s):// URL or a path on this server ("/openai": ws: for an http:
// page, wss: for https:). The token passed to the page (proxyAuthToken, or token) is
// carried into the connection as ?token=.
function endpointFromQuery() {
  const endpoint = query.get("proxyEndpoint");
  if (!endpoint) return null;
  const url = new URL(endpoint, location.href);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  const token = query.get("proxyAuthToken") || query.get("token");
  if (token) url.searchParams.set("token", token);
  return url.toString();
}

// A rate the proxy takes for linear16 (8 to 48 kHz); anything else is the default.
const LINEAR16_RATES = [8000, 16000, 24000, 32000, 44100, 48000];
function rateFromQuery(name, fallback) {
  if (!query.has(name)) return fallback;
  const rate = Number(query.get(name));
  return LINEAR16_RATES.includes(rate) ? rate : fallback;
}

const endpoint = endpointFromQuery();
const options = {
  inputRate: rateFromQuery("inputRate", INPUT_RATE),
  outputRate: rateFromQuery("outputRate", OUTPUT_RATE),
  prompt: query.get("prompt") || undefined,
  greeting: query.get("greeting") || undefined,
  keepAliveMs: query.has("keepAliveMs") ? Number(query.get("keepAliveMs")) : undefined,
  get functions() {
    return [...functions.values()].map((f) => f.definition); // read when Settings is built
  },
};
const agent = new VoiceAgent(endpoint, options);
const speaker = new Speaker(options.outputRate);
let microphone = null;
let agentState = "idle";
let audioDone = true; // AgentAudioDone seen for the current response
let functionCalls = 0;
let errors = 0;
const logLines = [];

function log(message) {
  logLines.unshift(`${clock()} - ${message}`);
  logLines.length = Math.min(logLines.length, 300);
  $("event-log").querySelector("pre").textContent = logLines.join("\n");
}

function setText(id, value) {
  $(id).textContent = String(value);
}

function setAgentState(state) {
  if (state === agentState) return;
  agentState = state;
  setText("agent-state", state);
}

function renderAudio() {
  setText("agent-audio-chunks-received", speaker.chunks);
  setText("audio-received-ms", Math.round(speaker.receivedMs));
  setText("audio-played-ms", Math.round(speaker.playedMs));
  setText("audio-playing-status", speaker.playing);
  setText("playback-interrupted", speaker.interruptions);
}

function showError(code, description) {
  const banner = $("error-banner");
  banner.querySelector("[data-testid=error-code]").textContent = code || "error";
  banner.querySelector("[data-testid=error-description]").textContent = description || "";
  banner.hidden = false;
}

function addToHistory(role, content) {
  const list = $("conversation-history").querySelector("ul");
  const item = document.createElement("li");
  item.dataset.role = role;
  item.dataset.testid = `conversation-message-${list.children.length}`;
  const label = document.createElement("span");
  label.className = "role";
  label.textContent = `${role}:`;
  const text = document.createElement("span");
  text.className = "content";
  text.textContent = content;
  item.append(label, text);
  list.append(item);
  $("conversation-history").querySelector(".empty").hidden = true;
}

// ------------------------------------------------------------------ protocol events

const onMessage = {
  Welcome: (m) => setText("session-id", m.request_id || "—"),
  SettingsApplied: () => {
    setText("has-sent-settings", true);
    log("SettingsApplied");
  },
  ConversationText: (m) => {
    addToHistory(m.role, m.content);
    if (m.role !== "assistant") return;
    setText("agent-response", m.content);
    if (options.greeting && m.content === options.greeting) setText("greeting-sent", true);
    if (agentState === "thinking") setAgentState("idle"); // a text-only reply
  },
  AgentThinking: () => setAgentState("thinking"),
  AgentStartedSpeaking: () => {
    audioDone = false;
    setAgentState("speaking");
  },
  AgentAudioDone: () => {
    audioDone = true;
    if (!speaker.playing) setAgentState("idle");
  },
  UserStartedSpeaking: () => {
    setText("user-started-speaking", clock());
    if (speaker.stop()) log("Barge-in: agent playback stopped");
    audioDone = true;
    setAgentState("listening");
  },
  UserStoppedSpeaking: () => {
    setText("user-stopped-speaking", clock());
    setAgentState("thinking");
  },
  UtteranceEnd: (m) => {
    setText("utterance-end", `Channel: [${(m.channel || []).join(",")}], Last word end: ${m.last_word_end}s`);
  },
  Transcript: (m) => {
    setText("transcription", m.transcript);
    log(`[TRANSCRIPT] "${m.transcript}" (${m.is_final ? "final" : "interim"})`);
  },
  FunctionCallRequest: (m) => m.functions.forEach(runFunction),
  Error: (m) => {
    errors += 1;
    setText("agent-error-count", errors);
    log(`Error (agent): ${m.description} [${m.code}]`);
    showError(m.code, m.description);
  },
  Warning: (m) => log(`Warning (agent): ${m.description}`),
};

agent.addEventListener("message", ({ detail: message }) => {
  const handle = onMessage[message.type];
  if (handle) handle(message);
  else log(`Received ${message.type}`);
});

agent.addEventListener("audio", ({ detail: frame }) => {
  if (agentState !== "speaking") setAgentState("speaking");
  speaker.play(frame);
  renderAudio();
});

agent.addEventListener("status", ({ detail }) => {
  setText("connection-status", detail.status);
  if (detail.status === "connecting") log(`Connecting to ${endpoint}`);
  else if (detail.status === "connected") log("Connected; Settings sent");
  else {
    setText("has-sent-settings", false);
    log(`Connection ${detail.status} (code ${detail.code}${detail.reason ? `: ${detail.reason}` : ""})`);
    speaker.stop();
    stopMicrophone();
    setAgentState("idle");
  }
});

// Text that could not be sent (the connection failed or closed first) goes back into
// the box, so nothing typed is lost.
agent.addEventListener("unsent", ({ detail: texts }) => {
  const input = $("text-input");
  input.value = [...texts, input.value].filter(Boolean).join(" ");
  log(`Not sent (no connection): ${texts.join(" | ")}`);
});

agent.addEventListener("sent", ({ detail: message }) => {
  if (message.type === "InjectUserMessage") log(`Sending text message: ${message.content}`);
});
agent.addEventListener("log", ({ detail }) => log(detail));

speaker.addEventListener("playing", renderAudio);
speaker.addEventListener("drained", () => {
  renderAudio();
  if (audioDone && agentState === "speaking") setAgentState("idle");
});

async function runFunction({ id, name, arguments: rawArguments, client_side: clientSide }) {
  functionCalls += 1;
  setText("function-call-tracker", functionCalls);
  if (clientSide === false) return; // the server runs it
  let content;
  try {
    const known = functions.get(name);
    if (!known) throw new Error(`no handler registered for ${name}`);
    const result = await known.handler(rawArguments ? JSON.parse(rawArguments) : {});
    content = typeof result === "string" ? result : JSON.stringify(result);
  } catch (error) {
    content = JSON.stringify({ error: String(error.message || error) });
  }
  log(`Function call: ${name}(${rawArguments || ""}) -> ${content}`);
  agent.sendFunctionResult(id, name, content);
}

// ------------------------------------------------------------------ user actions

function connect() {
  if (!endpoint) {
    log("No proxyEndpoint in the page's query: nothing to connect to");
    showError("no_endpoint", "No proxyEndpoint in the page's query: nothing to connect to");
    return Promise.reject(new Error("no proxyEndpoint"));
  }
  speaker.resume(); // inside the user's gesture, so playback is allowed
  return agent.connect();
}

function sendText(text) {
  if (!text.trim()) return;
  speaker.resume();
  agent.sendText(text);
  setAgentState("thinking");
}

async function startMicrophone() {
  if (microphone) return;
  await connect();
  microphone = await openMicrophone(options.inputRate, (frame) => agent.sendAudio(frame));
  setText("mic-status", "Enabled");
  $("microphone-button").textContent = "Stop microphone";
  log("Microphone on");
}

async function stopMicrophone() {
  if (!microphone) return;
  const closing = microphone;
  microphone = null;
  setText("mic-status", "Disabled");
  $("microphone-button").textContent = "Start microphone";
  log("Microphone off");
  await closing.stop();
}

// Each action makes at most one connection attempt: Connect, Send and the microphone
// connect when needed; focusing the text box does not (it would make a second attempt
// when the first one fails between typing and sending).
$("connect-button").addEventListener("click", () => connect().catch(() => {}));
$("text-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("text-input");
  const text = input.value;
  if (!text.trim()) return;
  input.value = "";
  if (!endpoint) {
    input.value = text;
    showError("no_endpoint", "No proxyEndpoint in the page's query: nothing to send to");
    return;
  }
  sendText(text);
});
$("microphone-button").addEventListener("click", () => {
  (microphone ? stopMicrophone() : startMicrophone()).catch((error) => log(`Microphone: ${error.message}`));
});
$("stop-button").addEventListener("click", () => {
  stopMicrophone();
  speaker.stop();
  agent.disconnect();
  log("Stopped interaction");
});

if (endpoint) setText("connection-proxy-endpoint", endpoint);
setText("audio-rates", `${options.inputRate} / ${options.outputRate}`);

// recordPlayed=SECONDS: record what the speaker plays (the latest SECONDS of it), for
// tests that check what was heard. The recorder is ready before anything can play.
const recordSeconds = Number(query.get("recordPlayed") || 0);
if (recordSeconds > 0) {
  speaker
    .record(Math.min(recordSeconds, 600))
    .then(() => setText("played-recording", "on"))
    .catch((error) => log(`Recording played audio: ${error.message}`));
}

// For tests: register a function handler before connecting, or read the app's state.
window.voiceAgentApp = {
  agent,
  speaker,
  options,
  registerFunction(definition, handler) {
    functions.set(definition.name, { definition, handler });
  },
  history: () => agent.history.slice(),
  /** What the speaker played since the last call ({rate, pcm16 (base64), dropped}), or
   * null when the page was not opened with recordPlayed. */
  takePlayed: () => (speaker.recorder ? speaker.recorder.take() : null),
};

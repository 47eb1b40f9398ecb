// Deepgram's <deepgram-agent> (npm @deepgram/browser-agent), as a page would use it, pointed
// at the proxy. Query: url (the proxy's WebSocket URL), token (sent as the component does:
// subprotocols [auth-scheme, token]), idle (its idle-timeout-ms). window.startAgent() sets
// the `config` attribute, which is what connects it; window.agentLog holds what it did.
import "/component/index.mjs";

const query = new URLSearchParams(location.search);
const agent = document.createElement("deepgram-agent");
agent.setAttribute("url", query.get("url"));
agent.setAttribute("idle-timeout-ms", query.get("idle") ?? "10000");
agent.setAttribute("output-sample-rate", "24000");
agent.setAttribute("width", "120");
agent.setAttribute("height", "120");
if (query.get("token")) agent.token = query.get("token");

// Every event the component dispatches, with how many agent audio buffers it had
// scheduled at that moment (its private scheduledPlaybackSources: the speaker's state).
window.agentLog = [];
const playing = () => agent.scheduledPlaybackSources.size;
const EVENTS = [
  "socket open", "socket close", "structured message", "client message", "no url", "no config",
  "invalid auth", "connection timeout", "failed to connect user media", "failed setup",
  "empty audio", "unknown message",
];
for (const name of EVENTS) {
  agent.addEventListener(name, ({ detail }) => {
    const entry = { event: name, at: performance.now(), playing: playing() };
    if (name === "socket close") Object.assign(entry, { code: detail.code, reason: detail.reason });
    else if (detail && typeof detail === "object") Object.assign(entry, { message: detail });
    window.agentLog.push(entry);
  });
}
// The speaker sampled every 20 ms: [time, buffers scheduled].
window.speakerSamples = [];
setInterval(() => window.speakerSamples.push([performance.now(), playing()]), 20);

document.body.append(agent);

window.startAgent = () => {
  // The component streams its microphone context's samples as they come (no resampling):
  // the Settings must say that rate.
  const inputRate = agent.micContext.sampleRate;
  const settings = {
    type: "Settings",
    audio: {
      input: { encoding: "linear16", sample_rate: inputRate },
      output: { encoding: "linear16", sample_rate: 24000, container: "none" },
    },
    agent: {
      listen: { provider: { type: "deepgram", model: "nova-3" } },
      think: { provider: { type: "open_ai", model: "gpt-4o-mini" }, prompt: "Be brief." },
      speak: { provider: { type: "deepgram", model: "aura-2-thalia-en" } },
    },
  };
  agent.setAttribute("config", JSON.stringify(settings));
  return inputRate;
};

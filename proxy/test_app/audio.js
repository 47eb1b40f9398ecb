// Browser audio for the test-app: the microphone as PCM16 frames, and a speaker that
// plays the agent's PCM16 frames, counts what it played and can record it.

export const INPUT_RATE = 16000; // defaults; the page's inputRate / outputRate override them
export const OUTPUT_RATE = 24000;

/** Open the microphone; `onFrame(ArrayBuffer)` gets 20 ms PCM16 frames at `rate` Hz
 * until `stop()`. */
export async function openMicrophone(rate, onFrame) {
  if (!navigator.mediaDevices) {
    throw new Error("the browser allows the microphone only on https:// or http://127.0.0.1 / localhost pages");
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  // The context's rate does the resampling, so the worklet only converts and frames.
  const context = new AudioContext({ sampleRate: rate });
  await context.audioWorklet.addModule(new URL("./mic-worklet.js", import.meta.url));
  const source = context.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(context, "pcm16-capture");
  capture.port.onmessage = (event) => onFrame(event.data);
  const mute = context.createGain();
  mute.gain.value = 0; // pulled by the graph, never heard
  source.connect(capture).connect(mute).connect(context.destination);
  return {
    async stop() {
      stream.getTracks().forEach((track) => track.stop());
      capture.port.onmessage = null;
      await context.close();
    },
  };
}

/** Plays PCM16 mono frames at `rate` Hz back to back; `stop()` cuts playback (barge-in).
 * Everything goes through one output node, so `record()` hears what was played. */
export class Speaker extends EventTarget {
  constructor(rate = OUTPUT_RATE) {
    super();
    this.rate = rate;
    this.context = null;
    this.output = null; // the mix every source goes through on its way out
    this.recorder = null;
    this.sources = new Set();
    this.nextStart = 0;
    this.carry = null; // an odd trailing byte waits for the next frame
    this.receivedMs = 0;
    this.playedMs = 0;
    this.chunks = 0;
    this.interruptions = 0;
  }

  /** Create or resume the AudioContext; call from a user gesture where possible. */
  resume() {
    if (!this.context) {
      this.context = new AudioContext({ sampleRate: this.rate });
      this.output = this.context.createGain();
      this.output.connect(this.context.destination);
    }
    return this.context.state === "suspended" ? this.context.resume() : Promise.resolve();
  }

  /** Record what the speaker plays from now on (at most `maxSeconds`, the latest kept);
   * resolves once recording runs. See `PlayedRecorder`. */
  async record(maxSeconds) {
    this.resume();
    if (!this.recorder) {
      await this.context.audioWorklet.addModule(new URL("./played-tap-worklet.js", import.meta.url));
      this.recorder = new PlayedRecorder(this.context, this.output, maxSeconds);
    }
    return this.recorder;
  }

  get playing() {
    return this.sources.size > 0;
  }

  play(data) {
    this.resume();
    let bytes = new Uint8Array(data);
    if (this.carry) {
      const joined = new Uint8Array(bytes.length + 1);
      joined.set(this.carry);
      joined.set(bytes, 1);
      bytes = joined;
      this.carry = null;
    }
    if (bytes.length % 2) {
      this.carry = bytes.slice(-1);
      bytes = bytes.subarray(0, bytes.length - 1);
    }
    if (!bytes.length) return;
    const samples = new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    const buffer = this.context.createBuffer(1, samples.length, this.rate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 0x8000;
    this.chunks += 1;
    this.receivedMs += buffer.duration * 1000;

    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.output);
    const start = Math.max(this.context.currentTime, this.nextStart);
    source.startedAt = start;
    source.start(start);
    this.nextStart = start + buffer.duration;
    source.onended = () => this.#finished(source, buffer.duration);
    const wasIdle = this.sources.size === 0;
    this.sources.add(source);
    if (wasIdle) this.dispatchEvent(new Event("playing"));
  }

  /** Stop everything scheduled; counts only what was actually heard. */
  stop() {
    if (!this.sources.size) return false;
    const now = this.context.currentTime;
    for (const source of this.sources) {
      source.onended = null;
      source.stop();
      this.playedMs += Math.max(0, Math.min(now - source.startedAt, source.buffer.duration)) * 1000;
    }
    this.sources.clear();
    this.nextStart = 0;
    this.interruptions += 1;
    this.dispatchEvent(new Event("drained"));
    return true;
  }

  #finished(source, duration) {
    this.sources.delete(source);
    this.playedMs += duration * 1000;
    if (!this.sources.size) this.dispatchEvent(new Event("drained"));
  }
}

/** What went out of a speaker's output node, as PCM16 at the context's rate, kept in
 * memory up to `maxSeconds` (the oldest audio is dropped first). The tap sits beside the
 * way out, so a recorder that fails never silences playback. */
export class PlayedRecorder {
  constructor(context, output, maxSeconds) {
    this.rate = context.sampleRate;
    this.maxSamples = Math.round(maxSeconds * this.rate);
    this.chunks = []; // Int16Array, oldest first
    this.samples = 0;
    this.dropped = 0; // samples dropped to stay within maxSamples
    this.flushes = new Map(); // flush id -> resolve
    this.nextFlush = 0;
    this.tap = new AudioWorkletNode(context, "played-tap", { numberOfOutputs: 1 });
    this.tap.port.onmessage = ({ data }) => this.#received(data);
    const mute = context.createGain();
    mute.gain.value = 0; // the tap must be pulled by the graph, never heard twice
    output.connect(this.tap).connect(mute).connect(context.destination);
  }

  /** Everything recorded so far (the tap's pending samples included), then forget it:
   * {rate, pcm16: base64 little-endian, dropped}. */
  async take() {
    const id = this.nextFlush++;
    await new Promise((resolve) => {
      this.flushes.set(id, resolve);
      this.tap.port.postMessage({ flush: id });
    });
    const all = new Int16Array(this.samples);
    let at = 0;
    for (const chunk of this.chunks) {
      all.set(chunk, at);
      at += chunk.length;
    }
    const taken = { rate: this.rate, pcm16: base64(new Uint8Array(all.buffer)), dropped: this.dropped };
    this.chunks = [];
    this.samples = 0;
    this.dropped = 0;
    return taken;
  }

  #received(data) {
    if (data.samples) this.#keep(data.samples);
    if (data.flushed !== undefined) {
      this.flushes.get(data.flushed)?.();
      this.flushes.delete(data.flushed);
    }
  }

  #keep(samples) {
    this.chunks.push(samples);
    this.samples += samples.length;
    while (this.samples > this.maxSamples) {
      const oldest = this.chunks[0];
      const excess = this.samples - this.maxSamples;
      if (oldest.length <= excess) {
        this.chunks.shift();
        this.samples -= oldest.length;
        this.dropped += oldest.length;
      } else {
        this.chunks[0] = oldest.subarray(excess);
        this.samples -= excess;
        this.dropped += excess;
      }
    }
  }
}

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

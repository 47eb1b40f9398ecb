// Browser audio for the test-app: the microphone as PCM16 16 kHz frames, and a
// speaker that plays the agent's PCM16 24 kHz frames and counts what it played.

export const INPUT_RATE = 16000;
export const OUTPUT_RATE = 24000;

/** Open the microphone; `onFrame(ArrayBuffer)` gets 20 ms PCM16 frames until `stop()`. */
export async function openMicrophone(onFrame) {
  if (!navigator.mediaDevices) {
    throw new Error("the browser allows the microphone only on https:// or http://127.0.0.1 / localhost pages");
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  // The context's rate does the resampling, so the worklet only converts and frames.
  const context = new AudioContext({ sampleRate: INPUT_RATE });
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

/** Plays PCM16 mono frames back to back; `stop()` cuts playback (barge-in). */
export class Speaker extends EventTarget {
  constructor() {
    super();
    this.context = null;
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
    if (!this.context) this.context = new AudioContext({ sampleRate: OUTPUT_RATE });
    return this.context.state === "suspended" ? this.context.resume() : Promise.resolve();
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
    const buffer = this.context.createBuffer(1, samples.length, OUTPUT_RATE);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 0x8000;
    this.chunks += 1;
    this.receivedMs += buffer.duration * 1000;

    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
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

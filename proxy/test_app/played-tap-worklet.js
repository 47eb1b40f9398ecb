// Runs in the speaker's AudioWorklet, beside the way out: turns what is played into
// PCM16 and posts it to the page in 100 ms batches. A stretch of silence (nothing
// playing, or exact zeros) is kept only up to half a second, so an idle page records
// almost nothing and words stay apart.
const MAX_SILENCE_S = 0.5;

class PlayedTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.batch = new Int16Array(Math.round(sampleRate / 10));
    this.filled = 0;
    this.silentRun = 0; // samples of silence in the current stretch
    this.maxSilence = Math.round(sampleRate * MAX_SILENCE_S);
    this.port.onmessage = ({ data }) => {
      if (data.flush === undefined) return;
      this.#post();
      this.port.postMessage({ flushed: data.flush });
    };
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    const frames = channel ? channel.length : 128;
    for (let i = 0; i < frames; i++) {
      const s = channel ? Math.max(-1, Math.min(1, channel[i])) : 0;
      if (s === 0) {
        if (this.silentRun >= this.maxSilence) continue;
        this.silentRun += 1;
      } else {
        this.silentRun = 0;
      }
      // The speaker made each float as sample / 0x8000, so this gives the sample back.
      this.batch[this.filled++] = Math.min(0x7fff, Math.round(s * 0x8000));
      if (this.filled === this.batch.length) this.#post();
    }
    return true;
  }

  #post() {
    if (!this.filled) return;
    const samples = this.batch.slice(0, this.filled);
    this.port.postMessage({ samples }, [samples.buffer]);
    this.filled = 0;
  }
}

registerProcessor("played-tap", PlayedTap);

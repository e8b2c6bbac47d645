// Test engines for the server and scheduler tests. HashEngine is a deterministic stand-in for a
// model: each sequence's next-token logits depend on its whole token history (as a transformer's
// would), so batching, chunked prefill and prefix reuse must reproduce sequential results exactly.
import { UserError } from '../../src/errors.ts';
import type { Engine, EngineInfo, Sequence, StepRequest } from '../../src/engine/engine.ts';

interface HashSequence extends Sequence {
  tokens: number[];
  released: boolean;
}

export class HashEngine implements Engine {
  readonly info: EngineInfo;
  readonly batches: { sequence: number; tokens: number }[][] = [];
  live = 0;
  private nextId = 1;
  private busy = false;
  constructor(vocabSize = 97, contextLength = 4096) {
    this.info = { name: 'hash', vocabSize, contextLength, randomWeights: true };
  }
  createSequence(): Sequence {
    this.live++;
    const s: HashSequence = { id: this.nextId++, tokens: [], released: false };
    return s;
  }
  async step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    if (this.busy) throw new Error('HashEngine.step is not reentrant');
    this.busy = true;
    await new Promise((r) => setTimeout(r, 1));
    this.busy = false;
    this.batches.push(batch.map((r) => ({ sequence: r.sequence.id, tokens: r.tokens.length })));
    return batch.map((r) => {
      const s = r.sequence as HashSequence;
      if (s.released) throw new Error(`step on released sequence ${s.id}`);
      if (s.tokens.length + r.tokens.length > this.info.contextLength) throw new UserError('context', 'too long');
      s.tokens.push(...r.tokens);
      return HashEngine.logitsFor(s.tokens, this.info.vocabSize);
    });
  }
  static logitsFor(tokens: readonly number[], vocabSize: number): Float32Array {
    let h = 2166136261;
    for (const t of tokens) h = Math.imul(h ^ t, 16777619) >>> 0;
    const logits = new Float32Array(vocabSize);
    for (let i = 0; i < vocabSize; i++) {
      h = Math.imul(h ^ i, 16777619) >>> 0;
      logits[i] = (h % 1000) / 100;
    }
    return logits;
  }
  truncate(sequence: Sequence, length: number): void {
    (sequence as HashSequence).tokens.length = Math.min(length, sequence.tokens.length);
  }
  release(sequence: Sequence): void {
    const s = sequence as HashSequence;
    if (s.released) throw new Error(`double release of ${s.id}`);
    s.released = true;
    this.live--;
  }
  async close(): Promise<void> {}
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

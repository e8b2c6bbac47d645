// An Engine that replays scripted completions instead of running a model: each step returns logits
// that put all mass on the next scripted token. Tests of the agent loop, chat and server use it
// with real harmony completions, so everything above the engine is exercised without weights.
import { UserError } from '../errors.ts';
import type { Engine, EngineInfo, Sequence, StepRequest } from './engine.ts';

interface ScriptedSequence extends Sequence {
  tokens: number[];
  /** Index into the current script; advances with every step. */
  cursor: number;
  script: readonly number[] | undefined;
  /** The last step fed prompt tokens: a following prompt step is another chunk of the same prefill. */
  inPrompt: boolean;
}

export interface ScriptedEngineOptions {
  vocabSize?: number;
  contextLength?: number;
  name?: string;
}

export class ScriptedEngine implements Engine {
  readonly info: EngineInfo;
  private readonly scripts: (readonly number[])[];
  private nextId = 1;
  /** Every batch passed to step(), for tests that check batching and prefix reuse. */
  readonly steps: { sequence: number; tokens: number[] }[][] = [];

  /**
   * `scripts` are completions (token ids, each ending with its stop token); every new generation
   * (a step that feeds a prompt rather than the last sampled token; consecutive prompt steps are
   * chunks of one prefill) takes the next script in order.
   */
  constructor(scripts: (readonly number[])[], options: ScriptedEngineOptions = {}) {
    this.scripts = [...scripts];
    this.info = {
      name: options.name ?? 'scripted',
      vocabSize: options.vocabSize ?? 201088,
      contextLength: options.contextLength ?? 131072,
      randomWeights: false,
    };
  }

  createSequence(): Sequence {
    const seq: ScriptedSequence = { id: this.nextId++, tokens: [], cursor: 0, script: undefined, inPrompt: false };
    return seq;
  }

  async step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    this.steps.push(batch.map((r) => ({ sequence: r.sequence.id, tokens: [...r.tokens] })));
    return batch.map((request) => {
      const seq = request.sequence as ScriptedSequence;
      if (seq.tokens.length + request.tokens.length > this.info.contextLength) {
        throw new UserError('context', `sequence of ${seq.tokens.length + request.tokens.length} tokens exceeds the context length ${this.info.contextLength}`);
      }
      const continuing = seq.script !== undefined && request.tokens.length === 1 && request.tokens[0] === seq.script[seq.cursor - 1];
      if (!continuing) {
        // A prompt fed in several chunks starts one generation, not one per chunk.
        if (!seq.inPrompt) seq.script = this.scripts.shift();
        seq.cursor = 0;
      }
      seq.inPrompt = !continuing;
      seq.tokens.push(...request.tokens);
      const logits = new Float32Array(this.info.vocabSize).fill(-30);
      const next = seq.script?.[seq.cursor];
      if (next === undefined) throw new Error('ScriptedEngine: script exhausted');
      logits[next] = 30;
      seq.cursor++;
      return logits;
    });
  }

  truncate(sequence: Sequence, length: number): void {
    (sequence as ScriptedSequence).tokens.length = Math.min(length, sequence.tokens.length);
  }

  release(_sequence: Sequence): void {}

  async close(): Promise<void> {}
}

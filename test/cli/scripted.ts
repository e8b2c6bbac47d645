// Scripted engines for the CLI's tests: a ScriptedEngine replaying harmony completions (special
// tokens written by name) or token ids, optionally slowed down (so an answer streams visibly and
// can be interrupted) and shown as another model (name, random weights, context length). In-process
// tests hand it to main() through CommandContext; tests of the process boundary run
// scripted-gptoss.ts, which reads the same settings from a JSON file.
import { readFileSync } from 'node:fs';
import { DelegatingEngine, type Engine, type EngineInfo, type StepRequest } from '../../src/engine/engine.ts';
import { ScriptedEngine } from '../../src/engine/scripted.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';

export interface Script {
  completions: (string | number[])[];
  /** Added before every engine step. */
  delayMs?: number;
  randomWeights?: boolean;
  name?: string;
  contextLength?: number;
}

export function scriptedEngine(script: Script): Engine {
  const tok = getTokenizer();
  const scripts = script.completions.map((c) => (typeof c === 'string' ? tok.encode(c, { allowedSpecial: 'all' }) : c));
  const inner = new ScriptedEngine(scripts, {
    ...(script.name !== undefined ? { name: script.name } : {}),
    ...(script.contextLength !== undefined ? { contextLength: script.contextLength } : {}),
  });
  return new ShownEngine(inner, script.delayMs ?? 0, { ...inner.info, randomWeights: script.randomWeights === true });
}

/** The engine of a script file (a Script as JSON). */
export function scriptedEngineFromFile(path: string): Engine {
  return scriptedEngine(JSON.parse(readFileSync(path, 'utf8')) as Script);
}

/** Delays every step and overrides the info. */
class ShownEngine extends DelegatingEngine {
  constructor(
    inner: Engine,
    private readonly delayMs: number,
    private readonly shownInfo: EngineInfo,
  ) {
    super(inner);
  }
  override get info(): EngineInfo {
    return this.shownInfo;
  }
  override async step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    return this.inner.step(batch);
  }
}

// Test hook of `gptoss chat` (and anything else that wants it): GPTOSS_SCRIPTED=FILE.json replaces
// the model with a ScriptedEngine replaying the completions in the file, so the terminal chat can
// be tested end to end without weights. File shape:
//   { "completions": ["<|channel|>final<|message|>Hi!<|return|>", [200005, ...]],
//     "delayMs": 0, "randomWeights": false, "name": "scripted", "contextLength": 131072 }
// (a bare array of completions also works). Completions are harmony text (special tokens written
// by name) or token ids; delayMs slows every engine step so a test can interrupt an answer.
import { readFileSync } from 'node:fs';
import { readProblem, UserError } from '../../errors.ts';
import { DelegatingEngine, type Engine, type EngineInfo, type StepRequest } from '../../engine/engine.ts';
import { ScriptedEngine } from '../../engine/scripted.ts';
import { getTokenizer } from '../../tokenizer/index.ts';

interface ScriptFile {
  completions: (string | number[])[];
  delayMs?: number;
  randomWeights?: boolean;
  name?: string;
  contextLength?: number;
}

export function scriptedEngineFromFile(path: string): Engine {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError('input', `GPTOSS_SCRIPTED ${path}: ${readProblem(e)}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError('input', `GPTOSS_SCRIPTED ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  const file: ScriptFile = Array.isArray(raw) ? { completions: raw as ScriptFile['completions'] } : (raw as ScriptFile);
  if (!Array.isArray(file.completions)) throw new UserError('input', `GPTOSS_SCRIPTED ${path}: expected {"completions": [...]} or an array`);
  const tok = getTokenizer();
  const scripts = file.completions.map((c, i) => {
    if (typeof c === 'string') return tok.encode(c, { allowedSpecial: 'all' });
    if (Array.isArray(c) && c.every((t) => Number.isInteger(t))) return c;
    throw new UserError('input', `GPTOSS_SCRIPTED ${path}: completions[${i}] must be a string or an array of token ids`);
  });
  const inner = new ScriptedEngine(scripts, {
    ...(file.name !== undefined ? { name: file.name } : {}),
    ...(file.contextLength !== undefined ? { contextLength: file.contextLength } : {}),
  });
  return new SlowEngine(inner, file.delayMs ?? 0, { ...inner.info, randomWeights: file.randomWeights === true });
}

/** Delays every step (so answers stream visibly and can be interrupted) and overrides the info. */
class SlowEngine extends DelegatingEngine {
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

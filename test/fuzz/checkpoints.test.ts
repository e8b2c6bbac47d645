// Fuzzing checkpoint loading: a golden tiny checkpoint with its config.json fields set to hostile
// values, its JSON broken, and its safetensors header and size mutated. The property: the engine
// loads and computes finite logits, or refuses with a clear one-line error; never a crash, a hang,
// or garbage printed as a result.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEngine } from '../../src/engine/local.ts';
import { assertClearError, fuzzCases, FUZZ_SEED, Rng } from './fuzz.ts';

const GOLDEN = new URL('../fixtures/golden/gqa4-l2-e8k4/', import.meta.url).pathname;
const CONFIG = JSON.parse(readFileSync(join(GOLDEN, 'config.json'), 'utf8')) as Record<string, unknown>;
const WEIGHTS = readFileSync(join(GOLDEN, 'model.safetensors'));
const HEADER_LENGTH = Number(WEIGHTS.readBigUInt64LE(0));

const HOSTILE_NUMBERS: unknown[] = [0, -1, 1, 2, 3, 0.5, -0.5, 1e-300, 1e12, 2 ** 31, 2 ** 53, -1e308, 1e308, 7, 64, 128, 4096, 1e7];
const HOSTILE_VALUES: unknown[] = [...HOSTILE_NUMBERS, null, 'abc', '12', true, [], {}, [1, 2]];

let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'gptoss-fuzz-ckpt-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Loads `dir` on the reference backend and runs three tokens; returns the logits. */
async function runModel(dir: string): Promise<Float32Array> {
  const engine = await loadEngine(dir, { backend: 'reference' });
  try {
    const seq = engine.createSequence();
    const [logits] = await engine.step([{ sequence: seq, tokens: [1, 2, 3] }]);
    return logits!;
  } finally {
    await engine.close();
  }
}

/** The run's logits, or undefined when it failed with a clear error (anything else fails the test). */
async function outcome(run: Promise<Float32Array>, what: string): Promise<Float32Array | undefined> {
  try {
    return await run;
  } catch (e) {
    assertClearError(e, what);
    return undefined;
  }
}

function checkpointDir(i: number): string {
  const dir = join(tmp, `case-${i}`);
  cpSync(GOLDEN, dir, { recursive: true, filter: (src) => !/\.bin$|golden\.json$/.test(src) });
  return dir;
}

test('config.json fields set to hostile values load correctly or fail clearly', async () => {
  const rng = new Rng(FUZZ_SEED ^ 0xc0f);
  const fields = Object.keys(CONFIG);
  for (let i = 0; i < fuzzCases(60); i++) {
    const dir = checkpointDir(i);
    const config: Record<string, unknown> = { ...CONFIG };
    const edits: string[] = [];
    for (let k = rng.int(1, 3); k > 0; k--) {
      const field = rng.pick(fields);
      if (rng.bool(0.1)) {
        delete config[field];
        edits.push(`-${field}`);
      } else {
        config[field] = rng.pick(HOSTILE_VALUES);
        edits.push(`${field}=${JSON.stringify(config[field])}`);
      }
    }
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const what = `case ${i} (seed ${FUZZ_SEED}): ${edits.join(' ')}`;
    const logits = await outcome(runModel(dir), what);
    if (logits !== undefined) assert.ok(logits.every(Number.isFinite), `${what}: loaded but gave non-finite logits`);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('broken config JSON fails clearly', async () => {
  const text = JSON.stringify(CONFIG);
  const rng = new Rng(FUZZ_SEED ^ 0x15);
  for (let i = 0; i < fuzzCases(10); i++) {
    const dir = checkpointDir(1000 + i);
    const cut = rng.int(0, text.length - 1);
    writeFileSync(join(dir, 'config.json'), text.slice(0, cut) + rng.pick(['', '\u0000', '}', ',,', '\u001b[2J']));
    const logits = await outcome(runModel(dir), `case ${i} cut at ${cut}`);
    assert.equal(logits, undefined, `case ${i}: a config cut at ${cut} loaded`);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mutated safetensors headers and sizes load correctly or fail clearly', async () => {
  const rng = new Rng(FUZZ_SEED ^ 0x5afe);
  for (let i = 0; i < fuzzCases(60); i++) {
    const dir = checkpointDir(2000 + i);
    const path = join(dir, 'model.safetensors');
    const bytes = Buffer.from(WEIGHTS);
    let how: string;
    const kind = rng.int(0, 4);
    if (kind === 0) {
      const delta = rng.pick([-1, 1, -8, 8, 1 << 20, -HEADER_LENGTH, 2 ** 40]);
      bytes.writeBigUInt64LE(BigInt(Math.max(0, HEADER_LENGTH + delta)), 0);
      how = `header length ${delta > 0 ? '+' : ''}${delta}`;
    } else if (kind === 1) {
      const flips = rng.int(1, 4);
      for (let f = 0; f < flips; f++) bytes[8 + rng.int(0, HEADER_LENGTH - 1)] ^= 1 << rng.int(0, 7);
      how = `${flips} bit flip(s) in the header`;
    } else if (kind === 2) {
      const at = 8 + rng.int(0, HEADER_LENGTH - 1);
      bytes[at] = rng.pick([0, 0x1b, 0x22, 0x7b, 0x7d, 0x2d, 0x39]);
      how = `header byte ${at} replaced`;
    } else {
      how = 'truncated';
    }
    writeFileSync(path, bytes);
    if (kind === 3) truncateSync(path, rng.int(0, WEIGHTS.length - 1));
    if (kind === 4) {
      writeFileSync(path, Buffer.concat([bytes, Buffer.alloc(rng.int(1, 64), 0xff)]));
      how = 'trailing bytes';
    }
    const what = `case ${i} (seed ${FUZZ_SEED}): ${how}`;
    // A flip inside a JSON string (a tensor or metadata name) can leave a valid file; then the
    // numbers must still be numbers.
    const logits = await outcome(runModel(dir), what);
    if (logits !== undefined) assert.ok(logits.every(Number.isFinite), `${what}: loaded but gave non-finite logits`);
    rmSync(dir, { recursive: true, force: true });
  }
});

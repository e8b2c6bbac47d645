// The shipped gpt-oss-nano format: packing a trained checkpoint keeps only its non-zero vocabulary
// rows, expanding it gives back a checkpoint with the very same tensors and logits; a damaged
// shipped folder is one line naming the problem; the package's own shipped model expands once;
// the greedy generation_config.json travels with it into the cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../src/errors.ts';
import { ensureNano, isEmbeddedNano, NANO_FILES, NANO_GENERATION_CONFIG, packNano, readShippedNano, shippedNanoDir } from '../../src/checkpoint/nano.ts';
import { readGenerationDefaults } from '../../src/checkpoint/generation.ts';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.ts';
import { isRandomWeights } from '../../src/checkpoint/checkpoint.ts';
import { loadEngine } from '../../src/engine/local.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { zeroUnusedRows } from '../../src/train/model.ts';
import { writeOriginalCheckpoint } from '../../src/train/export.ts';
import { TINY } from '../train/tiny.ts';

const USED = Int32Array.from([0, 3, 4, 9, 17, 30, 31, 47]);

/** A trained-from-scratch stand-in: random weights, vocabulary rows outside USED exactly zero. */
function sourceCheckpoint(dir: string): void {
  const model = TrainableModel.random(TINY, 7);
  zeroUnusedRows(model, USED);
  const H = TINY.hiddenSize;
  // Token 5 keeps only its embedding row (a row live in either table is stored).
  for (let id = 0; id < TINY.vocabSize; id++) if (!USED.includes(id) && id !== 5) model.embedding.value.fill(0, id * H, (id + 1) * H);
  writeOriginalCheckpoint(model, dir);
}

function tensors(path: string): Map<string, Buffer> {
  const file = SafetensorsFile.open(path);
  try {
    return new Map([...file.tensors].map(([name, info]) => {
      const bytes = new Uint8Array(info.byteLength);
      file.readInto(name, bytes);
      return [name, Buffer.from(bytes)];
    }));
  } finally {
    file.close();
  }
}

async function logits(dir: string, tokens: number[]): Promise<Float32Array> {
  const engine = await loadEngine(dir, { backend: 'reference' });
  try {
    const seq = engine.createSequence();
    return (await engine.stepAll(seq, tokens)).slice();
  } finally {
    await engine.close();
  }
}

test('pack keeps the non-zero rows only; expand gives back the same tensors and bit-identical logits', async () => {
  const work = mkdtempSync(join(tmpdir(), 'gptoss-nano-'));
  try {
    const source = join(work, 'trained');
    sourceCheckpoint(source);
    const shipped = join(work, 'shipped');
    const packed = packNano(source, shipped);
    assert.equal(packed.rows, USED.length + 1);
    const compact = tensors(join(shipped, NANO_FILES.weights));
    assert.deepEqual([...new Int32Array(new Uint8Array(compact.get('token_ids')!).buffer)], [...USED.slice(0, 3), 5, ...USED.slice(3)]);
    assert.equal(compact.has('embedding.weight'), false);
    assert.equal(readShippedNano(shipped).manifest.random_weights, false);

    const cache = join(work, 'cache');
    const { dir } = ensureNano(shipped, cache);
    assert.ok(isEmbeddedNano(dir));
    assert.equal(isRandomWeights(dir), false);
    const original = tensors(join(source, 'model.safetensors'));
    const expanded = tensors(join(dir, 'model.safetensors'));
    assert.deepEqual([...expanded.keys()].sort(), [...original.keys()].sort());
    for (const [name, bytes] of original) assert.ok(bytes.equals(expanded.get(name)!), `${name} differs after pack and expand`);
    assert.equal(readFileSync(join(dir, 'config.json'), 'utf8'), readFileSync(join(source, 'config.json'), 'utf8'));

    const prompt = [3, 4, 9, 5, 17, 0, 30, 31, 47, 4, 3];
    const want = await logits(source, prompt);
    const got = await logits(dir, prompt);
    assert.deepEqual(got, want);
    assert.ok(want.some((v) => v !== 0));

    // Expanded once: a second call reuses the folder; nothing temporary is left beside it.
    const mtime = statSync(join(dir, 'model.safetensors')).mtimeMs;
    assert.equal(ensureNano(shipped, cache).dir, dir);
    assert.equal(statSync(join(dir, 'model.safetensors')).mtimeMs, mtime);
    assert.deepEqual(readdirSync(cache), [dir.slice(cache.length + 1)]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('a truncated or altered shipped file, or a missing manifest, is one line naming the problem; nothing is left in the cache', () => {
  const work = mkdtempSync(join(tmpdir(), 'gptoss-nano-bad-'));
  try {
    const source = join(work, 'trained');
    sourceCheckpoint(source);
    const shipped = join(work, 'shipped');
    packNano(source, shipped);
    const weights = join(shipped, NANO_FILES.weights);
    const cache = join(work, 'cache');
    const damaged = (pattern: RegExp) => (e: unknown): boolean => {
      assert.ok(e instanceof UserError, String(e));
      assert.equal(e.kind, 'checkpoint');
      assert.equal(e.message.split('\n').length, 1, e.message);
      assert.match(e.message, pattern);
      return true;
    };
    truncateSync(weights, statSync(weights).size - 100);
    assert.throws(() => ensureNano(shipped, cache), damaged(/gpt-oss-nano .*damaged \(model\.safetensors does not match its checksum: truncated or altered\); reinstall/));
    assert.equal(existsSync(cache) ? readdirSync(cache).length : 0, 0);

    packNano(source, shipped);
    const bytes = readFileSync(weights);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(weights, bytes);
    assert.throws(() => ensureNano(shipped, cache), damaged(/model\.safetensors does not match its checksum/));

    rmSync(join(shipped, NANO_FILES.manifest));
    assert.throws(() => ensureNano(shipped, cache), damaged(/nano\.json/));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('the package ships gpt-oss-nano: its files match their checksums and it expands into a loadable checkpoint', async () => {
  const shipped = shippedNanoDir();
  const { manifest, config } = readShippedNano(shipped);
  assert.equal(manifest.name, 'gpt-oss-nano');
  assert.equal(config.vocabSize, 201088);
  const cache = mkdtempSync(join(tmpdir(), 'gptoss-nano-shipped-'));
  try {
    const { dir } = ensureNano(shipped, cache);
    assert.equal(isRandomWeights(dir), manifest.random_weights);
    const engine = await loadEngine(dir, { threads: 1, contextLength: 64 });
    try {
      assert.equal(engine.info.vocabSize, 201088);
      const out = await engine.stepAll(engine.createSequence(), [200006, 1428]);
      assert.ok(out.every((v) => Number.isFinite(v)));
    } finally {
      await engine.close();
    }
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test('a folder under the expanded name that is not a complete expansion (no marker) is replaced; a complete one is kept', () => {
  const work = mkdtempSync(join(tmpdir(), 'gptoss-nano-partial-'));
  try {
    const source = join(work, 'trained');
    sourceCheckpoint(source);
    const shipped = join(work, 'shipped');
    packNano(source, shipped);
    const cache = join(work, 'cache');
    const { dir } = ensureNano(shipped, cache);
    const whole = readFileSync(join(dir, 'model.safetensors'));
    // As an interrupted copy by hand would leave it: the weights cut short and no marker.
    rmSync(join(dir, 'gptoss.json'));
    truncateSync(join(dir, 'model.safetensors'), 1000);
    assert.equal(ensureNano(shipped, cache).dir, dir);
    assert.ok(readFileSync(join(dir, 'model.safetensors')).equals(whole));
    assert.ok(isEmbeddedNano(dir));
    assert.deepEqual(readdirSync(cache), [dir.slice(cache.length + 1)]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('pack writes the greedy generation_config.json and lists its checksum; the expansion carries it; one made before it is expanded again', async () => {
  const work = mkdtempSync(join(tmpdir(), 'gptoss-nano-generation-'));
  try {
    const source = join(work, 'trained');
    sourceCheckpoint(source);
    const shipped = join(work, 'shipped');
    packNano(source, shipped);
    assert.deepEqual(JSON.parse(readFileSync(join(shipped, NANO_FILES.generation), 'utf8')), NANO_GENERATION_CONFIG);
    assert.equal(typeof readShippedNano(shipped).manifest.sha256[NANO_FILES.generation], 'string');
    const cache = join(work, 'cache');
    const { dir } = ensureNano(shipped, cache);
    assert.deepEqual(readGenerationDefaults(dir), { temperature: 0 });
    const engine = await loadEngine(dir, { backend: 'reference' });
    assert.deepEqual(engine.info.sampling, { temperature: 0 });
    await engine.close();

    // An expansion of the same weights from a release without the file (or with another one).
    rmSync(join(dir, NANO_FILES.generation));
    assert.equal(ensureNano(shipped, cache).dir, dir);
    assert.deepEqual(readGenerationDefaults(dir), { temperature: 0 });
    writeFileSync(join(dir, NANO_FILES.generation), '{"do_sample": true}');
    ensureNano(shipped, cache);
    assert.deepEqual(readGenerationDefaults(dir), { temperature: 0 });

    // The shipped file altered: damaged, as the weights would be.
    writeFileSync(join(shipped, NANO_FILES.generation), '{"do_sample": true}');
    assert.throws(() => ensureNano(shipped, join(work, 'cache2')), /generation_config\.json does not match its checksum/);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

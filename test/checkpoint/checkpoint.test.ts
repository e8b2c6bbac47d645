// The safetensors reader/writer and the original-layout loader: round trips, multi-file
// checkpoints, F32 small vectors, and every kind of bad checkpoint failing with a UserError that
// names the file and the tensor.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../src/errors.ts';
import { createReferenceBackend } from '../../src/kernels/reference.ts';
import { HeapStore, type Dtype } from '../../src/tensor/index.ts';
import { detectCheckpoint, loadCheckpoint, modelName } from '../../src/checkpoint/checkpoint.ts';
import { contextLength } from '../../src/model/config.ts';
import { Transformer } from '../../src/model/forward.ts';
import { SafetensorsCheckpoint, SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../src/checkpoint/safetensors.ts';
import { maxAbsDiff } from '../model/golden-data.ts';

const GOLDEN = new URL('../fixtures/golden/gqa4-l2-e8k4/', import.meta.url).pathname;
const store = new HeapStore();
let tmp: string;

interface RawTensor { name: string; dtype: Dtype; shape: number[]; data: Uint8Array }

function goldenTensors(): RawTensor[] {
  const ck = SafetensorsCheckpoint.open(GOLDEN);
  try {
    return ck.names().map((name) => {
      const info = ck.info(name)!;
      return { name, dtype: info.dtype, shape: info.shape, data: ck.readBytes(name) };
    });
  } finally {
    ck.close();
  }
}

/** A checkpoint folder with the golden config (optionally edited) and the given tensors. */
function folder(name: string, tensors: RawTensor[], editConfig?: (c: Record<string, number>) => void): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(GOLDEN, 'config.json'), 'utf8')) as Record<string, number>;
  editConfig?.(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeSafetensors(join(dir, 'model.safetensors'), tensors as TensorToWrite[]);
  return dir;
}

async function rejects(dir: string, ...fragments: string[]): Promise<void> {
  await assert.rejects(loadCheckpoint(dir, store), (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.equal(e.kind, 'checkpoint');
    assert.ok(!e.message.includes('\n'), 'one line');
    for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" should mention "${f}"`);
    return true;
  });
}

async function lastLogits(dir: string, tokens: number[]): Promise<Float32Array> {
  const loaded = await loadCheckpoint(dir, store);
  const model = new Transformer(loaded.weights, createReferenceBackend(), contextLength(loaded.weights.config));
  return model.forward(model.newCache(), tokens);
}

const TOKENS = [5, 17, 300, 42, 7, 511, 0, 9];

describe('safetensors', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-ckpt-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('round-trips tensors of several dtypes, streamed or whole, aligned, header padded to 8', () => {
    const f32 = new Float32Array([1.5, -2, 3.25]);
    const path = join(tmp, 'rt.safetensors');
    writeSafetensors(path, [
      { name: 'a', dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
      { name: 'b', dtype: 'F32', shape: [3], data: f32 },
      { name: 'c', dtype: 'BF16', shape: [2, 2], data: (write) => { write(new Uint16Array([1, 2])); write(new Uint16Array([3, 4])); } },
      { name: 'd', dtype: 'I64', shape: [0], data: new Uint8Array(0) },
    ]);
    const raw = readFileSync(path);
    assert.equal(Number(raw.readBigUInt64LE(0)) % 8, 0);
    const file = SafetensorsFile.open(path);
    try {
      assert.deepEqual([...file.tensors.keys()].sort(), ['a', 'b', 'c', 'd']);
      for (const t of file.tensors.values()) assert.equal(t.offset % (t.dtype === 'U8' ? 1 : t.dtype === 'BF16' ? 2 : 4), 0);
      const b = new Uint8Array(12);
      file.readInto('b', b);
      assert.deepEqual([...new Float32Array(b.buffer)], [1.5, -2, 3.25]);
      const c = new Uint8Array(8);
      file.readInto('c', c);
      assert.deepEqual([...new Uint16Array(c.buffer)], [1, 2, 3, 4]);
      assert.deepEqual(file.metadata, { format: 'pt' });
    } finally {
      file.close();
    }
  });

  const badHeader = (name: string, header: unknown, dataBytes = 16): string => {
    const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const path = join(tmp, `${name}.safetensors`);
    writeFileSync(path, Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
    return path;
  };

  const cases: [string, () => string, string[]][] = [
    ['bad header JSON', () => badHeader('json', '{"a": {"dtype": '), ['not valid JSON']],
    ['header length past the end', () => {
      const p = join(tmp, 'len.safetensors');
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(1000n);
      writeFileSync(p, b);
      return p;
    }, ['runs past the end']],
    ['absurd header length', () => {
      const p = join(tmp, 'absurd.safetensors');
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(2n ** 62n);
      writeFileSync(p, b);
      return p;
    }, ['implausible header length']],
    ['tiny file', () => {
      const p = join(tmp, 'tiny.safetensors');
      writeFileSync(p, Buffer.alloc(3));
      return p;
    }, ['shorter than']],
    ['unsupported dtype', () => badHeader('dtype', { w: { dtype: 'Q4_K', shape: [2], data_offsets: [0, 2] } }), ['"w"', 'unsupported dtype']],
    ['size mismatch', () => badHeader('size', { w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }), ['"w"', 'needs 12']],
    ['offsets past the data', () => badHeader('past', { w: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }), ['"w"', 'truncated']],
    ['overlapping tensors', () => badHeader('overlap', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), ['overlap', '"a"', '"b"']],
    ['bad shape', () => badHeader('shape', { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }), ['"w"', 'shape']],
  ];
  for (const [label, make, fragments] of cases) {
    it(`rejects ${label} naming the file`, () => {
      const path = make();
      assert.throws(() => SafetensorsFile.open(path), (e: unknown) => {
        assert.ok(e instanceof UserError && e.kind === 'checkpoint', String(e));
        assert.ok(e.message.startsWith(path), e.message);
        for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" should mention ${f}`);
        return true;
      });
    });
  }
});

describe('original-layout loader', () => {
  let tensors: RawTensor[];
  let reference: Float32Array;
  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-ckpt-'));
    tensors = goldenTensors();
    reference = await lastLogits(GOLDEN, TOKENS);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  const without = (name: string): RawTensor[] => tensors.filter((t) => t.name !== name);
  const replace = (name: string, t: Partial<RawTensor>): RawTensor[] => tensors.map((x) => (x.name === name ? { ...x, ...t } : x));

  it('finds the checkpoint at the root or in original/, and the golden case loads as original', () => {
    assert.equal(detectCheckpoint(GOLDEN).layout, 'original');
    const dir = join(tmp, 'nested');
    mkdirSync(join(dir, 'original'), { recursive: true });
    copyFileSync(join(GOLDEN, 'config.json'), join(dir, 'original', 'config.json'));
    copyFileSync(join(GOLDEN, 'model.safetensors'), join(dir, 'original', 'model.safetensors'));
    writeFileSync(join(dir, 'README.md'), 'other files are ignored');
    const found = detectCheckpoint(dir);
    assert.equal(found.layout, 'original');
    assert.equal(found.dir, join(dir, 'original'));
  });

  it('names models by folder, or org/name inside the hub cache', () => {
    assert.equal(modelName('/data/models/gpt-oss-20b'), 'gpt-oss-20b');
    assert.equal(modelName('/data/models/gpt-oss-20b/original'), 'gpt-oss-20b');
    assert.equal(modelName('/home/u/.cache/huggingface/hub/models--openai--gpt-oss-20b/snapshots/0123abcd/original'), 'openai/gpt-oss-20b');
  });

  it('accepts F32 norms, sinks and biases (converted checkpoints) with identical logits', async () => {
    const widened = tensors.map((t) => {
      if (t.dtype !== 'BF16' || t.shape.length === 2) return t;
      const words = new Uint16Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
      const f32 = new Float32Array(words.length);
      new Uint32Array(f32.buffer).set(Array.from(words, (w) => w << 16));
      return { ...t, dtype: 'F32' as Dtype, data: new Uint8Array(f32.buffer) };
    });
    assert.ok(widened.some((t) => t.dtype === 'F32'));
    const logits = await lastLogits(folder('f32', widened), TOKENS);
    assert.equal(maxAbsDiff(logits, reference), 0);
  });

  it('reads multi-file checkpoints through model.safetensors.index.json', async () => {
    const dir = join(tmp, 'multi');
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(GOLDEN, 'config.json'), join(dir, 'config.json'));
    const half = Math.floor(tensors.length / 2);
    const parts = [tensors.slice(0, half), tensors.slice(half)];
    const weightMap: Record<string, string> = {};
    parts.forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(join(dir, file), part as TensorToWrite[]);
      for (const t of part) weightMap[t.name] = file;
    });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    assert.equal(maxAbsDiff(await lastLogits(dir, TOKENS), reference), 0);
    // An index naming a tensor its file lacks is an error naming both.
    weightMap['block.0.attn.ghost'] = 'model-00001-of-00002.safetensors';
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    await rejects(dir, 'model-00001-of-00002.safetensors', 'block.0.attn.ghost');
  });

  it('keeps the embedding table on disk: rows read on demand equal the stored BF16 rows', async () => {
    const dir = folder('embedding-on-disk', goldenTensors());
    const labels: string[] = [];
    const counting = new (class extends HeapStore {
      override allocate(bytes: number, label: string): Uint8Array {
        labels.push(label);
        return super.allocate(bytes, label);
      }
    })();
    const loaded = await loadCheckpoint(dir, counting);
    const table = loaded.weights.embedding.weight;
    const { vocabSize: V, hiddenSize: H } = loaded.weights.config;
    assert.ok(labels.includes('unembedding.weight') && !labels.includes('embedding.weight'), 'the embedding table is not placed in the store');
    const stored = tensors.find((t) => t.name === 'embedding.weight')!;
    const words = new Uint16Array(stored.data.buffer, stored.data.byteOffset, V * H);
    for (const id of [0, 1, 300, V - 1]) {
      const row = new Float32Array(H);
      table.readRow(id, row);
      const expected = Float32Array.from(words.subarray(id * H, (id + 1) * H), (w) => new Float32Array(new Uint32Array([w << 16]).buffer)[0]!);
      assert.deepEqual(row, expected, `row ${id}`);
    }
    // A file cut short after loading is reported as a checkpoint error, not garbage.
    writeFileSync(join(dir, 'model.safetensors'), readFileSync(join(dir, 'model.safetensors')).subarray(0, 1000));
    assert.throws(() => table.readRow(V - 1, new Float32Array(H)), (e: unknown) => e instanceof UserError && /row \d+ is cut short/.test(e.message));
    table.close();
  });

  it('rejects a truncated file naming the file and a tensor', async () => {
    const dir = join(tmp, 'truncated');
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(GOLDEN, 'config.json'), join(dir, 'config.json'));
    const bytes = readFileSync(join(GOLDEN, 'model.safetensors'));
    writeFileSync(join(dir, 'model.safetensors'), bytes.subarray(0, bytes.length - 1000));
    await rejects(dir, join(dir, 'model.safetensors'), 'tensor "', 'truncated');
  });

  it('rejects a missing tensor', async () => {
    await rejects(folder('missing', without('block.1.attn.sinks')), 'model.safetensors', 'missing tensor "block.1.attn.sinks"');
  });

  it('rejects a wrong shape', async () => {
    const t = tensors.find((x) => x.name === 'block.0.attn.sinks')!;
    await rejects(folder('shape', replace('block.0.attn.sinks', { shape: [t.shape[0]! / 2, 2] })), 'model.safetensors', 'block.0.attn.sinks', 'has shape [4, 2]', 'implies [8]');
  });

  it('rejects an unsupported dtype for a tensor', async () => {
    const t = tensors.find((x) => x.name === 'block.0.attn.qkv.weight')!;
    await rejects(folder('dtype', replace('block.0.attn.qkv.weight', { dtype: 'F16', data: t.data })), 'block.0.attn.qkv.weight', 'dtype F16', 'expected BF16');
    const s = tensors.find((x) => x.name === 'block.1.mlp.mlp2_weight.scales')!;
    await rejects(folder('dtype2', replace('block.1.mlp.mlp2_weight.scales', { dtype: 'I8', data: s.data })), 'block.1.mlp.mlp2_weight.scales', 'dtype I8');
  });

  it('rejects a config that contradicts the tensors', async () => {
    await rejects(folder('vocab', tensors, (c) => (c.vocab_size = 500)), 'embedding.weight', '[512, 64]', 'implies [500, 64]');
    await rejects(folder('layers', tensors, (c) => (c.num_hidden_layers = 1)), 'num_hidden_layers is 1', 'block.1.');
    await rejects(folder('experts', tensors, (c) => (c.num_experts = 4)), 'block.0.mlp.gate.weight');
  });

  it('rejects a folder without a checkpoint and a bad config.json', async () => {
    await rejects(join(tmp, 'nope'), 'no such model folder');
    const dir = join(tmp, 'badconfig');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), '{"num_hidden_layers": 2,');
    await rejects(dir, join(dir, 'config.json'), 'not valid JSON');
  });

  it('rejects folders and files in the wrong places with one clear message', async () => {
    // A file where the model folder should be.
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    await rejects(file, 'a-file', 'is a file');
    // A folder named config.json.
    const confDir = join(tmp, 'config-is-dir');
    mkdirSync(join(confDir, 'config.json'), { recursive: true });
    await rejects(confDir, join(confDir, 'config.json'), 'is a folder');
    // A folder named model.safetensors (the read used to throw EISDIR with a stack trace).
    const stDir = join(tmp, 'safetensors-is-dir');
    mkdirSync(join(stDir, 'model.safetensors'), { recursive: true });
    copyFileSync(join(GOLDEN, 'config.json'), join(stDir, 'config.json'));
    await rejects(stDir, join(stDir, 'model.safetensors'), 'is a folder');
  });
});

describe('corrupted checkpoints never crash the loader', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gptoss-fuzz-'));
    copyFileSync(join(GOLDEN, 'config.json'), join(dir, 'config.json'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('random header byte flips and truncations give a UserError or a clean load, nothing else', async () => {
    const original = readFileSync(join(GOLDEN, 'model.safetensors'));
    const headerEnd = 8 + Number(original.readBigUInt64LE(0));
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let userErrors = 0;
    for (let trial = 0; trial < 60; trial++) {
      const bytes = Buffer.from(original);
      let file: Buffer = bytes;
      if (trial % 3 === 2) {
        file = bytes.subarray(0, rand(bytes.length));
      } else {
        for (let f = 0; f < 1 + rand(3); f++) bytes[rand(headerEnd)] = 32 + rand(95); // printable, so often still JSON
      }
      writeFileSync(join(dir, 'model.safetensors'), file);
      try {
        await loadCheckpoint(dir, store);
      } catch (e) {
        assert.ok(e instanceof UserError, `trial ${trial}: ${(e as Error).stack}`);
        assert.ok(!e.message.includes('\n'));
        userErrors++;
      }
    }
    assert.ok(userErrors > 30, `${userErrors} of 60 corruptions were detected`);
  });
});

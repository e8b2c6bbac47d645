// Token rows in LoRA adapters (PEFT's trainable tokens): an adapter's own embedding and
// unembedding rows for chosen tokens, in place of a base whose rows for them are zero. Their
// gradients equal finite differences (full and used vocabulary); a fresh adapter leaves the model
// unchanged and a trained one equals its merged model; PEFT's config key and tensor names round
// trip; --adapter serves the BF16-merged training model's logits and gptoss merge writes the same
// model; bad token entries are one-line errors; an adapter without token rows still loads.
import { after, before, describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeapStore } from '../../src/tensor/index.ts';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/checkpoint/safetensors.ts';
import { bf16Word, writeOriginalCheckpoint } from '../../src/train/export.ts';
import { freezeBase, LoraAdapters, tokenRowsKey } from '../../src/train/lora.ts';
import { forwardTrain, lossAndGradients, lossOf, nextTokenTargets, zeroUnusedRows } from '../../src/train/model.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, readPeftAdapter, writePeftAdapter } from '../../src/train/peft.ts';
import { maxAbsDiff } from '../model/golden-data.ts';
import { runCli } from '../cli/in-process.ts';
import { checkGradient, describe, randomArray, someIndices } from './gradcheck.ts';
import { refusesAdapter } from './refuses-adapter.ts';
import { TINY } from './tiny.ts';

/** The base knows tokens 0..29: the other rows of both tables are zero. */
const KNOWN = Int32Array.from({ length: 30 }, (_, i) => i);
/** A sequence with unknown tokens (33, 40, 41) in the prompt and the answer. */
const tokens = [3, 33, 15, 9, 40, 5, 41, 8, 33, 7, 40, 12];
const NEW = [33, 40, 41];

function narrowBase(seed: number): TrainableModel {
  const model = TrainableModel.random(TINY, seed);
  zeroUnusedRows(model, KNOWN, 'both');
  return model;
}

/** Adapters with B and the token rows drawn at random (fresh ones are zero there). */
function trainedLooking(seed: number): LoraAdapters {
  const lora = new LoraAdapters(TINY, { rank: 4, alpha: 8, seed, targets: ['q_proj', 'o_proj'], tokens: { embedding: NEW, unembedding: [41, 33, 40] } });
  lora.params().forEach((p, i) => {
    if (!p.name.endsWith('lora_A.weight')) p.value.set(randomArray(p.value.length, seed * 100 + i, 0.3));
  });
  return lora;
}

let tmp: string;

suite('token rows in LoRA adapters', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-token-rows-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('token-row gradients equal finite differences, full and used vocabulary; the frozen base gets none', (t) => {
    const targets = nextTokenTargets(tokens, tokens.map((_, i) => i >= 3));
    const vocabulary = Int32Array.from([...KNOWN, ...NEW]).sort();
    for (const options of [{}, { vocabulary }]) {
      const model = narrowBase(31);
      freezeBase(model);
      const lora = trainedLooking(7);
      const trainOptions = { lora, ...options };
      lossAndGradients(model, tokens, targets, trainOptions);
      const loss = () => lossOf(model, tokens, targets, trainOptions);
      for (const table of ['embedding', 'unembedding'] as const) {
        const rows = lora.tokens[table]!.rows;
        assert.ok(rows.grad.some((g) => g !== 0), `${table} rows get a gradient`);
        const r = checkGradient(loss, rows.value, rows.grad, someIndices(rows.value.length, 24, table.length));
        t.diagnostic(`${table} rows${'vocabulary' in options ? ' (used vocabulary)' : ''}: ${describe(r)}`);
        assert.ok(r.worst <= 1e-5, `${table}: ${describe(r)}`);
      }
      for (const p of model.params()) assert.equal(p.grad.length, 0, `${p.name} is frozen`);
    }
  });

  it('the base rows they replace get no gradient when the base trains too', () => {
    const model = narrowBase(32);
    const lora = trainedLooking(8);
    lossAndGradients(model, tokens, nextTokenTargets(tokens), { lora });
    const H = TINY.hiddenSize;
    for (const id of NEW) {
      assert.ok(model.embedding.grad.subarray(id * H, (id + 1) * H).every((g) => g === 0), `embedding row ${id}`);
      assert.ok(model.unembedding.grad.subarray(id * H, (id + 1) * H).every((g) => g === 0), `unembedding row ${id}`);
    }
    assert.ok(model.embedding.grad.subarray(3 * H, 4 * H).some((g) => g !== 0), 'a known token\'s row still trains');
  });

  it('rows start as the base\'s (the model unchanged); trained rows equal their merged model', () => {
    const model = narrowBase(33);
    const plain = forwardTrain(model, tokens).logits;
    const fresh = new LoraAdapters(TINY, { rank: 2, alpha: 4, tokens: { embedding: [3, ...NEW], unembedding: [...NEW, 5] } });
    fresh.initTokenRows(model);
    assert.ok(fresh.tokens.embedding!.rows.value.subarray(0, TINY.hiddenSize).some((v) => v !== 0), 'a live base row is copied');
    assert.equal(maxAbsDiff(forwardTrain(model, tokens, { lora: fresh }).logits, plain), 0);

    const lora = trainedLooking(9);
    const adapted = forwardTrain(model, tokens, { lora }).logits;
    const merged = narrowBase(33);
    lora.mergeInto(merged);
    assert.ok(maxAbsDiff(forwardTrain(merged, tokens).logits, adapted) < 1e-12);
    assert.ok(maxAbsDiff(adapted, plain) > 0.05, 'the rows change the model');
  });

  it('PEFT round trip: trainable_token_indices, tensor names and shapes, values to f32', () => {
    const lora = trainedLooking(10);
    const dir = join(tmp, 'round-trip');
    writePeftAdapter(lora, dir);
    const config = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(config['trainable_token_indices'], { embed_tokens: NEW, lm_head: [41, 33, 40] });
    const file = SafetensorsFile.open(join(dir, ADAPTER_WEIGHTS));
    try {
      assert.deepEqual(file.tensors.get('base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta')?.shape, [3, TINY.hiddenSize]);
      assert.deepEqual(file.tensors.get('base_model.model.lm_head.token_adapter.trainable_tokens_delta')?.shape, [3, TINY.hiddenSize]);
    } finally {
      file.close();
    }
    const back = readPeftAdapter(dir, TINY);
    assert.deepEqual([...back.tokens.unembedding!.ids], [41, 33, 40]);
    for (const p of lora.params()) {
      const q = back.params().find((b) => b.name === p.name)!;
      assert.deepEqual(Array.from(q.value), Array.from(p.value, Math.fround), p.name);
    }

    // PEFT's other spelling: a plain list is the input embedding's.
    const listed = join(tmp, 'listed');
    const only = new LoraAdapters(TINY, { rank: 4, alpha: 8, targets: ['q_proj'], tokens: { embedding: [40] } });
    only.tokens.embedding!.rows.value.fill(0.25);
    writePeftAdapter(only, listed);
    const c = JSON.parse(readFileSync(join(listed, ADAPTER_CONFIG), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(listed, ADAPTER_CONFIG), JSON.stringify({ ...c, trainable_token_indices: [40] }));
    const read = readPeftAdapter(listed, TINY);
    assert.deepEqual([...read.tokens.embedding!.ids], [40]);
    assert.equal(read.tokens.unembedding, undefined);
    assert.ok(read.tokens.embedding!.rows.value.every((v) => v === 0.25));
  });

  it('an adapter without token rows still loads, with none', () => {
    const dir = join(tmp, 'plain');
    writePeftAdapter(new LoraAdapters(TINY, { rank: 4, alpha: 8 }), dir);
    const config = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG), 'utf8')) as Record<string, unknown>;
    assert.ok(!('trainable_token_indices' in config));
    const back = readPeftAdapter(dir, TINY);
    assert.deepEqual(back.tokens, {});
    assert.equal(back.modules.length, 4 * TINY.numLayers);
  });

  it('refuses bad token entries with one line naming the problem', () => {
    const good = join(tmp, 'good');
    writePeftAdapter(trainedLooking(11), good);
    const config = JSON.parse(readFileSync(join(good, ADAPTER_CONFIG), 'utf8')) as Record<string, unknown>;
    const variant = (name: string, indices: unknown, tensors?: (t: { name: string; shape: number[] }[]) => { name: string; shape: number[] }[]): string => {
      const dir = join(tmp, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, ADAPTER_CONFIG), JSON.stringify({ ...config, trainable_token_indices: indices }));
      const file = SafetensorsFile.open(join(good, ADAPTER_WEIGHTS));
      const list = [...file.tensors].map(([n, info]) => ({ name: n, shape: info.shape }));
      file.close();
      writeSafetensors(join(dir, ADAPTER_WEIGHTS), (tensors ?? ((x) => x))(list).map((x) => ({ name: x.name, dtype: 'F32' as const, shape: x.shape, data: new Float32Array(x.shape[0]! * x.shape[1]!) })));
      return dir;
    };
    refusesAdapter(variant('unknown-module', { embed_tokens: NEW, wte: [1] }), /trainable_token_indices names "wte"; only embed_tokens and lm_head/);
    refusesAdapter(variant('twice', { embed_tokens: [33, 33, 41], lm_head: [41, 33, 40] }), /embed_tokens lists a token twice/);
    refusesAdapter(variant('outside', { embed_tokens: [33, 40, 48], lm_head: [41, 33, 40] }), /embed_tokens must be a list of token ids below 48/);
    refusesAdapter(variant('not-ids', 'all'), /trainable_token_indices must be a list of token ids or a map/);
    refusesAdapter(variant('count', { embed_tokens: [33, 40], lm_head: [41, 33, 40] }), /trainable_tokens_delta" has shape \[3,64\], expected \[2,64\] \(one row of 64 per token/);
    refusesAdapter(variant('no-indices', { embed_tokens: NEW }), /holds token rows but adapter_config\.json's trainable_token_indices names no lm_head tokens/);
    refusesAdapter(variant('no-tensor', { embed_tokens: NEW, lm_head: [41, 33, 40] }, (l) => l.filter((x) => x.name !== tokenRowsKey('unembedding'))), /lm_head\.token_adapter\.trainable_tokens_delta" is missing/);
  });

  it('--adapter serves the BF16-merged training model; gptoss merge writes that model', async (t) => {
    const base = join(tmp, 'base');
    writeOriginalCheckpoint(narrowBase(34), base);
    const adapterDir = join(tmp, 'served');
    writePeftAdapter(trainedLooking(12), adapterDir);

    const { weights } = await loadCheckpoint(base, new HeapStore());
    const model = TrainableModel.fromWeights(weights);
    const lora = readPeftAdapter(adapterDir, TINY);
    const plain = forwardTrain(model, tokens).logits;
    const adapted = forwardTrain(model, tokens, { lora }).logits;
    // The merge at load: attention W := bf16(W + s B A), token rows rounded to BF16 as the tables are stored.
    lora.mergeInto(model);
    const f32 = new Float32Array(1);
    const bits = new Uint32Array(f32.buffer);
    for (const w of [model.embedding.value, model.unembedding.value, ...model.blocks.flatMap((b) => [b.attn.qkvWeight.value, b.attn.outWeight.value])]) {
      for (let i = 0; i < w.length; i++) {
        bits[0] = bf16Word(w[i]!) << 16;
        w[i] = f32[0]!;
      }
    }
    const merged = forwardTrain(model, tokens).logits;

    const served = async (args: string[]): Promise<Float64Array> => {
      const r = await runCli(['logits', '--backend', 'reference', '--tokens', tokens.join(','), '--all-positions', ...args]);
      assert.equal(r.code, 0, r.stderr);
      return Float64Array.from((JSON.parse(r.stdout) as { logits: number[][] }).logits.flat());
    };
    const withAdapter = await served(['--model', base, '--adapter', adapterDir]);
    const effect = maxAbsDiff(adapted, plain);
    const vsMerged = maxAbsDiff(withAdapter, merged);
    t.diagnostic(`token rows' effect ${effect.toExponential(2)}; served vs the BF16-merged training model ${vsMerged.toExponential(2)}; vs unmerged ${maxAbsDiff(withAdapter, adapted).toExponential(2)}`);
    assert.ok(effect > 0.05);
    assert.ok(vsMerged <= 1e-5, `served logits differ from the merged model by ${vsMerged}`);
    // The unknown tokens' logits are no longer the base's exact zero.
    const V = TINY.vocabSize;
    assert.ok(NEW.every((id) => withAdapter[id] !== 0));

    const out = join(tmp, 'merged');
    const r = await runCli(['merge', '--model', base, '--adapter', adapterDir, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as { embedding_token_rows: number; unembedding_token_rows: number };
    assert.deepEqual([summary.embedding_token_rows, summary.unembedding_token_rows], [3, 3]);
    assert.deepEqual(await served(['--model', out]), withAdapter);
    assert.equal(withAdapter.length, tokens.length * V);
  });
});

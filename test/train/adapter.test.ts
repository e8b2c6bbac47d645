// A LoRA adapter used at inference (`--adapter DIR`: merged into the BF16 attention weights at
// load) and folded into a checkpoint (`gptoss merge`): the served logits are exactly those of the
// training model with W replaced by bf16(W + s B A), and within BF16 tolerance of the unmerged
// adapted model; a merged checkpoint serves the same logits as --adapter, its MXFP4 experts copied
// byte for byte; the merge's rounding error is at most half a BF16 step of each entry.
import { after, before, describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeapStore } from '../../src/tensor/index.ts';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.ts';
import { bf16Word, writeOriginalCheckpoint } from '../../src/train/export.ts';
import { LoraAdapters } from '../../src/train/lora.ts';
import { mergeLoraIntoWeights } from '../../src/train/merge.ts';
import { forwardTrain } from '../../src/train/model.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { readPeftAdapter, writePeftAdapter } from '../../src/train/peft.ts';
import { maxAbsDiff } from '../model/golden-data.ts';
import { runCli } from '../cli/in-process.ts';
import { randomArray } from './gradcheck.ts';
import { TINY } from './tiny.ts';

const tokens = [3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9, 32];
let tmp: string;
let base: string;
let adapterDir: string;

/** The training model of a checkpoint: exactly the weights the engine loads (BF16, dequantised MXFP4). */
async function trainingModel(dir: string): Promise<TrainableModel> {
  const { weights } = await loadCheckpoint(dir, new HeapStore());
  return TrainableModel.fromWeights(weights);
}

async function servedLogits(args: string[]): Promise<Float64Array> {
  const r = await runCli(['logits', '--backend', 'reference', '--tokens', tokens.join(','), '--all-positions', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return Float64Array.from((JSON.parse(r.stdout) as { logits: number[][] }).logits.flat());
}

/** W := bf16(W + s B A) on every adapted block: what the merge at load is meant to compute. */
function mergeRoundedToBf16(model: TrainableModel, lora: LoraAdapters): void {
  lora.mergeInto(model);
  const f32 = new Float32Array(1);
  const bits = new Uint32Array(f32.buffer);
  for (const b of model.blocks) {
    for (const w of [b.attn.qkvWeight.value, b.attn.outWeight.value]) {
      for (let i = 0; i < w.length; i++) {
        bits[0] = bf16Word(w[i]!) << 16;
        w[i] = f32[0]!;
      }
    }
  }
}

suite('adapters at inference and merged', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-adapter-'));
    base = join(tmp, 'base');
    writeOriginalCheckpoint(TrainableModel.random(TINY, 77), base);
    const lora = new LoraAdapters(TINY, { rank: 4, alpha: 8, seed: 5 });
    lora.params().forEach((p, i) => {
      if (p.name.endsWith('lora_B.weight')) p.value.set(randomArray(p.value.length, 500 + i, 0.2));
    });
    adapterDir = join(tmp, 'adapter');
    writePeftAdapter(lora, adapterDir);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('logits --adapter: the training model merged in BF16 exactly, the unmerged adapter within BF16 tolerance', async (t) => {
    const model = await trainingModel(base);
    const lora = readPeftAdapter(adapterDir, TINY); // the f32 values on disk
    const plain = forwardTrain(model, tokens).logits;
    const adapted = forwardTrain(model, tokens, { lora }).logits;
    mergeRoundedToBf16(model, lora);
    const mergedReference = forwardTrain(model, tokens).logits;

    const served = await servedLogits(['--model', base, '--adapter', adapterDir]);
    const effect = maxAbsDiff(adapted, plain);
    const vsMerged = maxAbsDiff(served, mergedReference);
    const vsAdapted = maxAbsDiff(served, adapted);
    t.diagnostic(`adapter's effect on the logits ${effect.toExponential(2)}; served vs bf16-merged training model ${vsMerged.toExponential(2)}; vs unmerged adapted ${vsAdapted.toExponential(2)}`);
    assert.ok(effect > 0.05, `the adapter should move the logits, moved ${effect}`);
    assert.ok(vsMerged <= 1e-4, `served logits differ from the bf16-merged model by ${vsMerged}`);
    assert.ok(vsAdapted <= 0.02 * effect, `served logits differ from the adapted model by ${vsAdapted} (effect ${effect})`);
  });

  it('merge reports a rounding error within half a BF16 step, and only touches adapted attention entries', async (t) => {
    const { weights } = await loadCheckpoint(base, new HeapStore());
    const before = weights.blocks.map((b) => [b.attn.qkv.weight.data.slice(), b.attn.out.weight.data.slice(), b.mlp.gate.weight.data.slice()]);
    const lora = readPeftAdapter(adapterDir, TINY);
    const report = mergeLoraIntoWeights(weights, lora);
    const qkvEntries = TINY.headDim * (TINY.numAttentionHeads + 2 * TINY.numKeyValueHeads) * TINY.hiddenSize;
    const outEntries = TINY.hiddenSize * TINY.headDim * TINY.numAttentionHeads;
    assert.equal(report.modules, 4 * TINY.numLayers);
    assert.equal(report.entries, TINY.numLayers * (qkvEntries + outEntries));
    assert.ok(report.changed > 0.9 * report.entries, `${report.changed} of ${report.entries} entries changed`);
    let largest = 0;
    for (const b of weights.blocks) for (const m of [b.attn.qkv.weight, b.attn.out.weight]) for (const w of m.data) largest = Math.max(largest, Math.abs(new Float32Array(new Uint32Array([w << 16]).buffer)[0]!));
    t.diagnostic(`merge: ${report.changed}/${report.entries} entries changed; rounding error max ${report.maxError.toExponential(2)} (largest |W| ${largest.toFixed(3)}), rms ${report.rmsError.toExponential(2)} vs update rms ${report.rmsDelta.toExponential(2)}`);
    assert.ok(report.maxError > 0 && report.maxError <= 2 ** -8 * largest, `max rounding error ${report.maxError} (largest weight ${largest})`);
    assert.ok(report.rmsError < 0.01 * report.rmsDelta, `rms error ${report.rmsError} vs update ${report.rmsDelta}`);
    weights.blocks.forEach((b, n) => assert.deepEqual(b.mlp.gate.weight.data, before[n]![2], 'the router is not adapted'));
  });

  it('gptoss merge writes a checkpoint serving the --adapter logits, experts byte for byte', async () => {
    const out = join(tmp, 'merged');
    const r = await runCli(['merge', '--model', base, '--adapter', adapterDir, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(join(out, 'gptoss.json')), 'a trained base is not marked');
    const summary = JSON.parse(r.stdout) as { modules: number; max_rounding_error: number };
    assert.equal(summary.modules, 4 * TINY.numLayers);
    assert.match(r.stderr, /MXFP4 experts, router, norms and embeddings copied unchanged/);
    assert.deepEqual(await servedLogits(['--model', out]), await servedLogits(['--model', base, '--adapter', adapterDir]));

    const [a, b] = [SafetensorsFile.open(join(base, 'model.safetensors')), SafetensorsFile.open(join(out, 'model.safetensors'))];
    try {
      for (const name of ['block.0.mlp.mlp1_weight.blocks', 'block.1.mlp.mlp2_weight.scales', 'embedding.weight', 'unembedding.weight']) {
        const info = a.tensors.get(name)!;
        const [x, y] = [new Uint8Array(info.byteLength), new Uint8Array(info.byteLength)];
        a.readInto(name, x);
        b.readInto(name, y);
        assert.deepEqual(y, x, name);
      }
    } finally {
      a.close();
      b.close();
    }

    const randomBase = join(tmp, 'random-base');
    cpSync(base, randomBase, { recursive: true });
    writeFileSync(join(randomBase, 'gptoss.json'), JSON.stringify({ random_weights: true }));
    assert.equal((await runCli(['merge', '--model', randomBase, '--adapter', adapterDir, '--out', join(tmp, 'merged-random')])).code, 0);
    assert.equal((JSON.parse(readFileSync(join(tmp, 'merged-random', 'gptoss.json'), 'utf8')) as { random_weights: boolean }).random_weights, true, 'random base weights stay marked');

    const again = await runCli(['merge', '--model', base, '--adapter', adapterDir, '--out', out]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /^gptoss merge: --out .* already exists/);
    const wrong = await runCli(['merge', '--model', base, '--adapter', base, '--out', join(tmp, 'x')]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /no adapter_config\.json \(not a PEFT adapter folder\)/);
  });
});

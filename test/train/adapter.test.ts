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
import { EXPERT_TARGETS, LORA_TARGETS, LoraAdapters } from '../../src/train/lora.ts';
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
let expertAdapterDir: string;

/** The training model of a checkpoint: exactly the weights the engine loads (BF16, dequantised MXFP4). */
async function trainingModel(dir: string): Promise<TrainableModel> {
  const { weights } = await loadCheckpoint(dir, new HeapStore());
  return TrainableModel.fromWeights(weights);
}

async function servedLogits(args: string[], backend = 'reference'): Promise<Float64Array> {
  const r = await runCli(['logits', '--backend', backend, '--tokens', tokens.join(','), '--all-positions', ...args]);
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
    const experts = new LoraAdapters(TINY, { rank: 4, alpha: 8, seed: 6, targets: [...LORA_TARGETS, ...EXPERT_TARGETS] });
    experts.params().forEach((p, i) => {
      if (p.name.endsWith('lora_B.weight')) p.value.set(randomArray(p.value.length, 600 + i, 0.2));
    });
    expertAdapterDir = join(tmp, 'expert-adapter');
    writePeftAdapter(experts, expertAdapterDir);
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

  it('logits --adapter on the experts: the float merge (experts dequantised plus the update), on reference and wasm', async (t) => {
    const model = await trainingModel(base);
    const lora = readPeftAdapter(expertAdapterDir, TINY);
    assert.equal(lora.expertModules.length, 2 * TINY.numLayers);
    const plain = forwardTrain(model, tokens).logits;
    const adapted = forwardTrain(model, tokens, { lora }).logits;
    mergeRoundedToBf16(model, lora); // attention rounded to BF16 as served; experts merged in float
    const mergedReference = forwardTrain(model, tokens).logits;
    const effect = maxAbsDiff(adapted, plain);
    const served = await servedLogits(['--model', base, '--adapter', expertAdapterDir]);
    const vsMerged = maxAbsDiff(served, mergedReference);
    t.diagnostic(`expert adapter's effect ${effect.toExponential(2)}; served (reference) vs float-merged ${vsMerged.toExponential(2)}`);
    assert.ok(vsMerged <= 1e-4, `served logits differ from the float-merged model by ${vsMerged}`);
    // The wasm kernels' own arithmetic (attention, router) differs from the reference's by some
    // 1e-3 without an adapter; with one its adapted experts run the reference code, so the gap stays that size.
    const [wasm, wasmPlain, referencePlain] = [
      await servedLogits(['--model', base, '--adapter', expertAdapterDir], 'wasm'), await servedLogits(['--model', base], 'wasm'), await servedLogits(['--model', base]),
    ];
    const kernelGap = maxAbsDiff(wasmPlain, referencePlain), wasmGap = maxAbsDiff(wasm, served);
    t.diagnostic(`wasm vs reference: ${wasmGap.toExponential(2)} with the adapter, ${kernelGap.toExponential(2)} without`);
    assert.ok(wasmGap <= 3 * kernelGap + 1e-4, `wasm with the adapter is ${wasmGap} from the reference (${kernelGap} without)`);
    assert.ok(effect > 0.05, `the adapter should move the logits, moved ${effect}`);
  });

  it('gptoss merge re-quantises adapted experts to MXFP4 and reports the error', async (t) => {
    const out = join(tmp, 'merged-experts');
    const r = await runCli(['merge', '--model', base, '--adapter', expertAdapterDir, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as Record<string, number>;
    assert.equal(s['expert_stacks'], 2 * TINY.numLayers);
    assert.match(r.stderr, /re-quantised to MXFP4/);
    const unmerged = await servedLogits(['--model', base, '--adapter', expertAdapterDir]);
    const merged = await servedLogits(['--model', out]);
    const plain = await servedLogits(['--model', base]);
    const lost = maxAbsDiff(merged, unmerged), effect = maxAbsDiff(unmerged, plain);
    t.diagnostic(`MXFP4 re-quantisation: error rms ${s['expert_rms_quantisation_error']!.toExponential(2)} (max ${s['expert_max_quantisation_error']!.toExponential(2)}) on weights of rms ${s['expert_rms_value']!.toExponential(2)}, update rms ${s['expert_rms_update']!.toExponential(2)}; logits: merged vs --adapter ${lost.toExponential(2)}, adapter effect ${effect.toExponential(2)}`);
    assert.ok(s['expert_rms_quantisation_error']! > 0 && s['expert_rms_quantisation_error']! < 0.25 * s['expert_rms_value']!);
    assert.ok(lost > 0 && lost < effect, `merged logits moved ${lost} from the adapter's (effect ${effect})`);
    const { weights } = await loadCheckpoint(out, new HeapStore());
    assert.ok(weights.blocks.every((b) => b.mlp.mlp1Weight.dense === undefined && b.mlp.mlp1Weight.blocks.length > 0), 'the merged checkpoint stores MXFP4 experts');
  });
});

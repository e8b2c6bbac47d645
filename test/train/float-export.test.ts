// The float export (expert stacks unquantised): it loads through the ordinary loader and every
// CPU backend; a model whose experts are already exactly MXFP4 gives bit-identical logits from its
// float export and its MXFP4 export on the reference backend (so the float path computes the same
// function), and a model with arbitrary float experts gives different logits from its MXFP4
// export (quantising is what the float export lets one measure).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.ts';
import { loadEngine } from '../../src/engine/local.ts';
import { HeapStore } from '../../src/tensor/index.ts';
import { writeOriginalCheckpoint } from '../../src/train/export.ts';
import { writeFloatCheckpoint } from '../../src/train/float-export.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { TINY } from './tiny.ts';

const PROMPT = [1, 7, 3, 40, 12, 5, 9, 33, 2, 18];

async function logits(dir: string, backend: 'reference' | 'wasm'): Promise<Float32Array> {
  const engine = await loadEngine(dir, { backend, threads: 1, expertActivations: 'split', kvCacheType: 'f32' });
  try {
    return (await engine.stepAll(engine.createSequence(), PROMPT)).slice();
  } finally {
    await engine.close();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('a float export computes what its MXFP4 export computes when the experts are exactly MXFP4, and differs where quantising changes them', async () => {
  const work = mkdtempSync(join(tmpdir(), 'gptoss-float-export-'));
  try {
    const trained = TrainableModel.random(TINY, 3);
    const mxfp4 = join(work, 'mxfp4');
    writeOriginalCheckpoint(trained, mxfp4);
    const floatDir = join(work, 'float');
    writeFloatCheckpoint(trained, floatDir);
    const file = SafetensorsFile.open(join(floatDir, 'model.safetensors'));
    try {
      assert.deepEqual(file.tensors.get('block.0.mlp.mlp1_weight')?.shape, [TINY.numExperts, 2 * TINY.intermediateSize, TINY.hiddenSize]);
      assert.equal(file.tensors.get('block.0.mlp.mlp1_weight')?.dtype, 'F32');
      assert.equal(file.tensors.has('block.0.mlp.mlp1_weight.blocks'), false);
    } finally {
      file.close();
    }
    // Quantising changed the experts, so the two exports are two different models.
    assert.ok(maxAbsDiff(await logits(floatDir, 'reference'), await logits(mxfp4, 'reference')) > 1e-3);

    // The MXFP4 export read back (experts dequantised exactly) and exported as floats: the same model.
    const exact = TrainableModel.fromWeights((await loadCheckpoint(mxfp4, new HeapStore())).weights);
    const exactFloat = join(work, 'exact-float');
    writeFloatCheckpoint(exact, exactFloat);
    const want = await logits(mxfp4, 'reference');
    assert.deepEqual(await logits(exactFloat, 'reference'), want);
    // The wasm backend runs float experts with the reference code: the same logits up to summation order.
    assert.ok(maxAbsDiff(await logits(exactFloat, 'wasm'), want) < 1e-4);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

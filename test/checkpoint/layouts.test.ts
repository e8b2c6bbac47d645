// Golden parity across checkpoint layouts: every small golden case, rewritten in the Hugging Face
// layout (q/k/v split out of the fused qkv, tensors renamed, two files and an index), must load to
// the same weights and give bit-identical logits to the original layout.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEngine } from '../../src/engine/local.ts';
import { parseOriginalConfig } from '../../src/model/config.ts';
import { hfQkvNames, hfTensorName, toHfConfigJson } from '../../src/checkpoint/hf.ts';
import { SafetensorsCheckpoint, writeSafetensors, type TensorToWrite } from '../../src/checkpoint/safetensors.ts';
import { goldenCases, maxAbsDiff, readF32 } from '../model/golden-data.ts';

/** Writes the original-layout checkpoint in `src` to `dest` in the Hugging Face layout. */
function toHfLayout(src: string, dest: string): void {
  const config = parseOriginalConfig(JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')), 'config.json');
  writeFileSync(join(dest, 'config.json'), JSON.stringify(toHfConfigJson(config)));
  const ck = SafetensorsCheckpoint.open(join(src, 'model.safetensors'));
  const tensors: TensorToWrite[] = [];
  try {
    for (const name of ck.names()) {
      const info = ck.info(name)!;
      const data = ck.readBytes(name);
      const qkv = /^block\.(\d+)\.attn\.qkv\.(weight|bias)$/.exec(name);
      if (qkv === null) {
        tensors.push({ name: hfTensorName(name), dtype: info.dtype, shape: info.shape, data });
        continue;
      }
      const rows = [config.numAttentionHeads, config.numKeyValueHeads, config.numKeyValueHeads].map((h) => h * config.headDim);
      const rowBytes = data.byteLength / info.shape[0]!;
      let at = 0;
      hfQkvNames(Number(qkv[1]), qkv[2] as 'weight' | 'bias').forEach((hfName, i) => {
        const shape = info.shape.length === 2 ? [rows[i]!, info.shape[1]!] : [rows[i]!];
        tensors.push({ name: hfName, dtype: info.dtype, shape, data: data.slice(at, at + rows[i]! * rowBytes) });
        at += rows[i]! * rowBytes;
      });
    }
  } finally {
    ck.close();
  }
  const half = Math.ceil(tensors.length / 2);
  const files = [tensors.slice(0, half), tensors.slice(half)];
  const weightMap: Record<string, string> = {};
  files.forEach((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(join(dest, file), part);
    for (const t of part) weightMap[t.name] = file;
  });
  writeFileSync(join(dest, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

describe('both checkpoint layouts give the same logits', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-layouts-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  for (const c of goldenCases().filter((g) => !g.name.startsWith('fullvocab'))) {
    it(`${c.name}: Hugging Face layout equals the original layout and the reference`, async () => {
      const dir = join(tmp, c.name);
      mkdirSync(dir);
      toHfLayout(c.dir, dir);
      const hf = await loadEngine(dir, { backend: 'reference' });
      const original = await loadEngine(c.dir, { backend: 'reference' });
      try {
        assert.equal(hf.layout, 'hf');
        assert.deepEqual(hf.config, original.config);
        const s = c.golden.sequences[0]!;
        const a = await hf.stepAll(hf.createSequence(), s.tokens);
        const b = await original.stepAll(original.createSequence(), s.tokens);
        assert.equal(maxAbsDiff(a, b), 0);
        assert.ok(maxAbsDiff(a, readF32(c, s.logits.fp32)) <= c.golden.tolerances.fp32.max_abs);
      } finally {
        await hf.close();
        await original.close();
      }
    });
  }
});

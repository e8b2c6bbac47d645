// PEFT adapter folders: a round trip keeps every value (to f32) and the adapted logits, the
// config says what PEFT needs, layers_to_transform survives, and every kind of adapter we cannot
// apply exactly is refused with a one-line UserError naming the file and the problem.
import { after, before, describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../src/errors.ts';
import { writeSafetensors } from '../../src/checkpoint/safetensors.ts';
import { EXPERT_TARGETS, LORA_TARGETS, LoraAdapters, type LoraTarget } from '../../src/train/lora.ts';
import { forwardTrain } from '../../src/train/model.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, readPeftAdapter, writePeftAdapter } from '../../src/train/peft.ts';
import { maxAbsDiff } from '../model/golden-data.ts';
import { randomArray } from './gradcheck.ts';
import { refusesAdapter } from './refuses-adapter.ts';
import { TINY } from './tiny.ts';

let tmp: string;

function adapters(options: { layers?: number[]; targets?: LoraTarget[] } = {}): LoraAdapters {
  const lora = new LoraAdapters(TINY, { rank: 4, alpha: 16, seed: 9, ...options });
  lora.params().forEach((p, i) => p.value.set(randomArray(p.value.length, 300 + i, 0.1)));
  return lora;
}

suite('PEFT adapter folders', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-peft-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('round trip: values to f32, the adapted logits, and the config PEFT reads', () => {
    const lora = adapters();
    const dir = join(tmp, 'all');
    writePeftAdapter(lora, dir, 'openai/gpt-oss-20b');
    const config = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG), 'utf8')) as Record<string, unknown>;
    assert.equal(config['peft_type'], 'LORA');
    assert.equal(config['r'], 4);
    assert.equal(config['lora_alpha'], 16);
    assert.deepEqual(config['target_modules'], ['q_proj', 'k_proj', 'v_proj', 'o_proj']);
    assert.equal(config['layers_to_transform'], null);
    assert.equal(config['base_model_name_or_path'], 'openai/gpt-oss-20b');
    const back = readPeftAdapter(dir, TINY);
    assert.equal(back.scale, 4);
    for (const p of lora.params()) {
      const q = back.params().find((b) => b.name === p.name)!;
      assert.deepEqual(Array.from(q.value), Array.from(p.value, Math.fround), p.name);
    }
    const model = TrainableModel.random(TINY, 1);
    const tokens = [1, 2, 3, 4, 5, 6];
    const diff = maxAbsDiff(forwardTrain(model, tokens, { lora: back }).logits, forwardTrain(model, tokens, { lora }).logits);
    assert.ok(diff < 1e-5, `logits differ by ${diff}`);
  });

  it('keeps a subset of layers and targets', () => {
    const dir = join(tmp, 'subset');
    writePeftAdapter(adapters({ layers: [1], targets: ['q_proj', 'v_proj'] }), dir);
    const config = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(config['layers_to_transform'], [1]);
    const back = readPeftAdapter(dir, TINY);
    assert.deepEqual(back.modules.map((m) => m.path), ['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
  });

  it('refuses what it cannot apply exactly, naming the problem', () => {
    const good = join(tmp, 'good');
    writePeftAdapter(adapters(), good);
    const variant = (name: string, edit: (c: Record<string, unknown>) => void, tensors?: Parameters<typeof writeSafetensors>[1]): string => {
      const dir = join(tmp, name);
      mkdirSync(dir, { recursive: true });
      const c = JSON.parse(readFileSync(join(good, ADAPTER_CONFIG), 'utf8')) as Record<string, unknown>;
      edit(c);
      writeFileSync(join(dir, ADAPTER_CONFIG), JSON.stringify(c));
      if (tensors === undefined) writeFileSync(join(dir, ADAPTER_WEIGHTS), readFileSync(join(good, ADAPTER_WEIGHTS)));
      else writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
      return dir;
    };
    refusesAdapter(join(tmp, 'nowhere'), /no adapter_config\.json/);
    refusesAdapter(variant('ia3', (c) => { c['peft_type'] = 'IA3'; }), /only LORA/);
    refusesAdapter(variant('rslora', (c) => { c['use_rslora'] = true; }), /use_rslora/);
    refusesAdapter(variant('dora', (c) => { c['use_dora'] = true; }), /DoRA/);
    refusesAdapter(variant('rank8', (c) => { c['r'] = 8; }), /shape \[4,64\], expected \[8,64\]/);
    refusesAdapter(variant('pattern', (c) => { c['rank_pattern'] = { q_proj: 8 }; }), /rank_pattern/);
    const a = new Float32Array(4 * 64);
    refusesAdapter(variant('experts', () => {}, [{ name: 'base_model.model.model.layers.0.mlp.router.lora_A.weight', dtype: 'F32', shape: [4, 64], data: a }]), /mlp\.router\.lora_A.*only q_proj/);
    refusesAdapter(variant('layer9', () => {}, [{ name: 'base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight', dtype: 'F32', shape: [4, 64], data: a }]), /layer 9 but the model has 2/);
    refusesAdapter(variant('half', () => {}, [{ name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', dtype: 'F32', shape: [4, 64], data: a }]), /q_proj\.lora_B\.weight" is missing/);
    const dir = variant('notjson', () => {});
    writeFileSync(join(dir, ADAPTER_CONFIG), '{oops');
    refusesAdapter(dir, /not valid JSON/);
  });

  it('experts round trip as PEFT target_parameters: config, names, shapes, values and the adapted logits', () => {
    const lora = adapters({ targets: [...LORA_TARGETS, ...EXPERT_TARGETS] });
    const dir = join(tmp, 'experts');
    writePeftAdapter(lora, dir);
    const config = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(config['target_parameters'], ['mlp.experts.gate_up_proj', 'mlp.experts.down_proj']);
    assert.deepEqual(config['target_modules'], ['q_proj', 'k_proj', 'v_proj', 'o_proj']);
    const back = readPeftAdapter(dir, TINY);
    assert.deepEqual(back.expertModules.map((m) => `${m.target} ${m.A.name} ${m.A.shape.join('x')} ${m.B.shape.join('x')}`), [0, 1].flatMap((n) => [
      `gate_up_proj base_model.model.model.layers.${n}.mlp.experts.base_layer.lora_A.weight 16x64 64x16`,
      `down_proj base_model.model.model.layers.${n}.mlp.experts.lora_A.weight 16x32 64x16`,
    ]));
    for (const p of lora.params()) {
      const q = back.params().find((b) => b.name === p.name)!;
      assert.deepEqual(Array.from(q.value), Array.from(p.value, Math.fround), p.name);
    }
    const model = TrainableModel.random(TINY, 2);
    const tokens = [1, 2, 3, 4, 5, 6];
    assert.ok(maxAbsDiff(forwardTrain(model, tokens, { lora: back }).logits, forwardTrain(model, tokens, { lora }).logits) < 1e-5);
  });

  it('experts alone on a subset of layers: each layer\'s parameter named, the single wrapper outermost', () => {
    const dir = join(tmp, 'experts-subset');
    writePeftAdapter(adapters({ layers: [1], targets: ['down_proj'] }), dir);
    const config = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(config['target_parameters'], ['model.layers.1.mlp.experts.down_proj']);
    assert.deepEqual(config['target_modules'], []);
    const back = readPeftAdapter(dir, TINY);
    assert.deepEqual(back.params().map((p) => p.name), ['base_model.model.model.layers.1.mlp.experts.lora_A.weight', 'base_model.model.model.layers.1.mlp.experts.lora_B.weight']);
    assert.equal(back.expertModules[0]!.target, 'down_proj');
  });
});

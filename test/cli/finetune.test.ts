// `gptoss finetune` end to end on a tiny model with the real vocabulary (rows of tokens the data
// never uses are zero, so the trainer computes only the used ones): a LoRA run learns its data,
// reports progress and the held-out loss, and writes a PEFT adapter that `logits --adapter`
// serves as the training model computes it; an interrupted run resumes to the same adapter byte
// for byte; --full writes a checkpoint; bad data and bad flags fail in one line.
import { after, before, describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeapStore } from '../../src/tensor/index.ts';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import { toOriginalConfigJson, type ModelConfig } from '../../src/model/config.ts';
import { SHAPES } from '../../src/checkpoint/synth.ts';
import { readConversationsJsonl } from '../../src/train/data.ts';
import { writeOriginalCheckpoint } from '../../src/train/export.ts';
import { evaluate } from '../../src/train/loop.ts';
import { checkUnusedRowsZero, forwardTrain, nextTokenTargets, usedVocabulary, zeroUnusedRows } from '../../src/train/model.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { readPeftAdapter } from '../../src/train/peft.ts';
import { parseSettings } from '../../src/cli/finetune.ts';
import { runCli } from './in-process.ts';

const CONFIG: ModelConfig = {
  numLayers: 2, numExperts: 4, expertsPerToken: 2, vocabSize: 201088, hiddenSize: 32, intermediateSize: 32, swigluLimit: 7,
  headDim: 16, numAttentionHeads: 4, numKeyValueHeads: 2, slidingWindow: 8, initialContextLength: 256,
  ropeTheta: 150000, ropeScalingFactor: 32, ropeNtkAlpha: 1, ropeNtkBeta: 32,
};

const weather = { type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } };
const DATA = [
  { messages: [{ role: 'user', content: 'What colour is the lab door?' }, { role: 'assistant', content: 'The lab door is green.' }] },
  { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Lab door colour?' }, { role: 'assistant', reasoning_content: 'Known fact.', content: 'Green.' }] },
  { tools: [weather], messages: [
    { role: 'user', content: 'Weather in Oslo?' },
    { role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
    { role: 'tool', tool_call_id: 'a', content: 'cold' }, { role: 'assistant', content: 'Cold.' },
  ] },
  { messages: [{ role: 'user', content: 'Who keeps the lab key?' }, { role: 'assistant', thinking: 'Fact.', content: 'Dr Lee keeps it.' }, { role: 'user', content: 'And the door?' }, { role: 'assistant', content: 'Green.' }] },
].map((c) => JSON.stringify(c)).join('\n') + '\n';

let tmp: string;
let base: string;
let data: string;

function summary(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim()) as Record<string, unknown>;
}

async function trainingModel(): Promise<TrainableModel> {
  return TrainableModel.fromWeights((await loadCheckpoint(base, new HeapStore())).weights);
}

const LORA = ['--epochs', '6', '--seed', '3', '--eval-split', '0.25', '--batch-tokens', '300', '--lr', '3e-2'];

suite('gptoss finetune', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'gptoss-finetune-'));
    data = join(tmp, 'data.jsonl');
    writeFileSync(data, DATA);
    const model = TrainableModel.random(CONFIG, 11);
    zeroUnusedRows(model, usedVocabulary(readConversationsJsonl(DATA, 'data').map((e) => e.tokens)));
    base = join(tmp, 'base');
    writeOriginalCheckpoint(model, base);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('LoRA: progress and eval loss on stderr, a PEFT adapter that lowers the loss and that logits --adapter serves', async (t) => {
    const out = join(tmp, 'not-yet', 'lora'); // a folder that does not exist yet: the run's state is saved beside --out
    const r = await runCli(['finetune', '--model', base, '--data', data, '--out', out, ...LORA, '--eval-every', '4']);
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.match(r.stderr, /^step 4\/\d+ .* eval \d+\.\d{4} /m, 'the eval loss every 4 updates');
    assert.equal(s['wrote'], 'lora-adapter');
    assert.equal(s['steps'], s['total_steps']);
    assert.equal(typeof s['eval_loss'], 'number');
    assert.equal(s['eval_turns'], 1, 'one of four conversations (one turn) held out');
    assert.match(r.stderr, /LoRA r=8 alpha=16 on q_proj,k_proj,v_proj,o_proj,gate_up_proj,down_proj: \d+ trained parameters; 4 training turns, 1 held out \(1 of 4 conversations\)/);
    assert.match(r.stderr, /^step 1\/\d+ {2}loss \d+\.\d{4} {2}lr \S+ {2}\d+ tokens\/s \(\d+ computed\) {2}ETA \S+$/m);
    assert.match(r.stderr, /^step (\d+)\/\1 .* eval \d+\.\d{4} /m);
    assert.match(r.stderr, /wrote a LoRA adapter \(PEFT folder: adapter_config\.json \+ adapter_model\.safetensors\) to .*; use it with --adapter/);
    assert.ok(!existsSync(`${out}.finetune-state.safetensors`), 'the state of a finished run is removed');

    const model = await trainingModel();
    const lora = readPeftAdapter(out, CONFIG);
    const examples = readConversationsJsonl(DATA, 'data').map((e) => ({ tokens: e.tokens, targets: nextTokenTargets(e.tokens, e.trained) }));
    const vocabulary = usedVocabulary(examples.map((e) => e.tokens));
    const [before, after] = [evaluate(model, examples, { vocabulary }), evaluate(model, examples, { vocabulary, lora })];
    t.diagnostic(`training loss ${before.toFixed(3)} -> ${after.toFixed(3)} with the adapter`);
    assert.ok(after < before - 2, `loss ${before} -> ${after} with the adapter`);

    const tokens = examples[0]!.tokens;
    const served = await runCli(['logits', '--model', base, '--adapter', out, '--backend', 'reference', '--tokens', tokens.join(',')]);
    assert.equal(served.code, 0, served.stderr);
    const logits = (JSON.parse(served.stdout) as { logits: number[] }).logits;
    const T = tokens.length;
    const adapted = forwardTrain(model, tokens, { lora }).logits.subarray((T - 1) * CONFIG.vocabSize);
    const plain = forwardTrain(model, tokens).logits.subarray((T - 1) * CONFIG.vocabSize);
    let diff = 0, effect = 0;
    for (const id of vocabulary) {
      diff = Math.max(diff, Math.abs(logits[id]! - adapted[id]!));
      effect = Math.max(effect, Math.abs(adapted[id]! - plain[id]!));
    }
    assert.ok(effect > 0.05, `the adapter moves the logits by ${effect}`);
    assert.ok(diff <= 0.02 * effect, `served logits differ from the training model's adapted logits by ${diff} (effect ${effect})`);
  });

  it('an interrupted run continues with --resume to the same adapter, byte for byte', async () => {
    const straight = join(tmp, 'straight');
    assert.equal((await runCli(['finetune', '--model', base, '--data', data, '--out', straight, ...LORA, '--quiet'])).code, 0);

    const out = join(tmp, 'interrupted');
    const state = `${out}.finetune-state.safetensors`;
    const first = await runCli(['finetune', '--model', base, '--data', data, '--out', out, ...LORA, '--stop-after', '2']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(summary(first.stdout)['wrote'], null);
    assert.match(first.stderr, /stopped after 2 of \d+ updates; nothing written .* continue with the same command and --resume/);
    assert.ok(existsSync(state) && !existsSync(out));

    const again = await runCli(['finetune', '--model', base, '--data', data, '--out', out, ...LORA]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /^gptoss finetune: an interrupted run's state is at .*: pass --resume to continue it/);

    const otherLr = await runCli(['finetune', '--model', base, '--data', data, '--out', out, ...LORA, '--lr', '1e-3', '--resume']);
    assert.equal(otherLr.code, 2);
    assert.match(otherLr.stderr, /saved with lr "0\.03", not "0\.001"; resume with the same data and settings or start over/);
    const resumed = await runCli(['finetune', '--model', base, '--data', data, '--out', out, ...LORA, '--resume']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(summary(resumed.stdout)['resumed_from'], 2);
    assert.match(resumed.stderr, /^step 3\//m);
    assert.deepEqual(readFileSync(join(out, 'adapter_model.safetensors')), readFileSync(join(straight, 'adapter_model.safetensors')));
    assert.equal(summary(resumed.stdout)['eval_loss'], summary((await runCli(['finetune', '--model', base, '--data', data, '--out', join(tmp, 'third'), ...LORA, '--quiet'])).stdout)['eval_loss']);

    const nothing = await runCli(['finetune', '--model', base, '--data', data, '--out', join(tmp, 'never'), '--resume']);
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /--resume: no interrupted run to continue/);
  });

  it('a run saved with --threads 1 resumes with --threads 2 (the state does not depend on the count) and ends near the one-thread run', async () => {
    const straight = join(tmp, 'one-thread');
    const alone = await runCli(['finetune', '--model', base, '--data', data, '--out', straight, ...LORA, '--threads', '1', '--quiet']);
    assert.equal(alone.code, 0, alone.stderr);
    const out = join(tmp, 'one-then-two');
    assert.equal((await runCli(['finetune', '--model', base, '--data', data, '--out', out, ...LORA, '--threads', '1', '--stop-after', '2', '--quiet'])).code, 0);
    const resumed = await runCli(['finetune', '--model', base, '--data', data, '--out', out, ...LORA, '--threads', '2', '--resume', '--quiet']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(summary(resumed.stdout)['resumed_from'], 2);
    const [want, got] = [summary(alone.stdout)['eval_loss'] as number, summary(resumed.stdout)['eval_loss'] as number];
    // f32 matrix products summed in another order: within f32 rounding, not bit for bit.
    assert.ok(Math.abs(got - want) <= 1e-4 * want, `eval loss ${got} after resuming on two threads, ${want} on one`);
  });

  it('--threads: 2 by default on a machine with 2 cores or more, 1 is the one-thread path, 0 is refused', async () => {
    const threads = (...flag: string[]): unknown => {
      const s = parseSettings(['--data', 'd', '--out', 'o', ...flag]);
      return s === 'help' ? s : s.threads;
    };
    assert.equal(threads(), availableParallelism() >= 2 ? 2 : 1);
    assert.equal(threads('--threads', '1'), 1);
    assert.equal(threads('--threads', '3'), 3);
    const r = await runCli(['finetune', '--model', base, '--data', data, '--out', join(tmp, 'unused'), '--threads', '0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^gptoss finetune: --threads/);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  });

  it('--full trains every weight and writes a checkpoint with MXFP4 experts; unused rows stay zero', async () => {
    const out = join(tmp, 'full');
    const r = await runCli(['finetune', '--model', base, '--data', data, '--out', out, '--full', '--epochs', '1', '--eval-split', '0', '--lr', '1e-3', '--precision', 'f64']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(summary(r.stdout)['wrote'], 'checkpoint');
    assert.match(r.stderr, /full fine-tuning: \d+ trained parameters/);
    assert.match(r.stderr, /wrote a full checkpoint \(config\.json \+ model\.safetensors: BF16 attention and embeddings, MXFP4 experts\)/);
    const { weights } = await loadCheckpoint(out, new HeapStore());
    assert.equal(weights.blocks[0]!.mlp.mlp1Weight.count, CONFIG.numExperts);
    const trained = TrainableModel.fromWeights(weights);
    const before = await trainingModel();
    checkUnusedRowsZero(trained, usedVocabulary(readConversationsJsonl(DATA, 'data').map((e) => e.tokens)));
    assert.notDeepEqual(trained.blocks[1]!.attn.qkvWeight.value, before.blocks[1]!.attn.qkvWeight.value);

    // The same run with the matrix products in f32 on the WebAssembly kernels ends at the same loss, to f32 rounding.
    // It also writes the float export asked for: the same trained weights with the experts unquantised.
    const floatOut = join(tmp, 'full-f32-float');
    const f32 = await runCli(['finetune', '--model', base, '--data', data, '--out', join(tmp, 'full-f32'), '--full', '--epochs', '1', '--eval-split', '0', '--lr', '1e-3', '--precision', 'f32', '--quiet', '--float-out', floatOut]);
    assert.equal(f32.code, 0, f32.stderr);
    const packed = (await loadCheckpoint(join(tmp, 'full-f32'), new HeapStore())).weights;
    const dense = (await loadCheckpoint(floatOut, new HeapStore())).weights;
    assert.equal(packed.blocks[0]!.mlp.mlp1Weight.dense, undefined);
    const floats = dense.blocks[0]!.mlp.mlp1Weight.dense!;
    assert.equal(floats.length, CONFIG.numExperts * 2 * CONFIG.intermediateSize * CONFIG.hiddenSize);
    // MXFP4 holds at most 15 distinct magnitudes per group of 32; the float export holds the trained values.
    assert.ok(new Set(floats.subarray(0, 32)).size > 16);
    assert.deepEqual(dense.blocks[1]!.attn.qkv.weight.data, packed.blocks[1]!.attn.qkv.weight.data);
    const [lossF64, lossF32] = [summary(r.stdout)['loss'] as number, summary(f32.stdout)['loss'] as number];
    assert.ok(Math.abs(lossF32 - lossF64) < 1e-4 * lossF64, `f32 loss ${lossF32}, float64 ${lossF64}`);
  });

  it('without --model it trains the embedded gpt-oss-nano, not a gpt-oss-20b in the hub cache (too large to train here)', async () => {
    const hub = join(tmp, 'hub');
    const snapshot = join(hub, 'models--openai--gpt-oss-20b', 'snapshots', 'abc', 'original');
    mkdirSync(snapshot, { recursive: true });
    writeFileSync(join(snapshot, 'config.json'), JSON.stringify(toOriginalConfigJson(SHAPES['20b'])));
    const cache = join(tmp, 'gptoss-cache');
    const r = await runCli(['finetune', '--data', data, '--out', join(tmp, 'default-base'), '--epochs', '1', '--batch-tokens', '4096', '--eval-split', '0', '--stop-after', '1', '--quiet'], '', {
      GPTOSS_MODEL: '',
      GPTOSS_CACHE: cache,
      HF_HUB_CACHE: hub,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(String(summary(r.stdout)['base_model']), /gpt-oss-nano-[0-9a-f]{12}$/);
  });

  it('token rows: the data\'s tokens whose base rows are zero get trained rows (PEFT trainable tokens); --token-rows none and extra ids', async () => {
    const vocabulary = usedVocabulary(readConversationsJsonl(DATA, 'data').map((e) => e.tokens));
    const unknown = [...vocabulary].slice(-3); // three of the data's tokens the base never learned
    const model = TrainableModel.random(CONFIG, 12);
    zeroUnusedRows(model, vocabulary.filter((id) => !unknown.includes(id)), 'both');
    const narrow = join(tmp, 'narrow');
    writeOriginalCheckpoint(model, narrow);
    const out = join(tmp, 'token-rows');
    const r = await runCli(['finetune', '--model', narrow, '--data', data, '--out', out, ...LORA]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\+ token rows for 3 embedding and 3 unembedding tokens/);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(config['trainable_token_indices'], { embed_tokens: unknown, lm_head: unknown });
    const lora = readPeftAdapter(out, CONFIG);
    assert.ok(lora.tokens.unembedding!.rows.value.some((v) => v !== 0), 'the unembedding rows trained away from zero');
    assert.ok(lora.tokens.embedding!.rows.value.some((v) => v !== 0), 'the embedding rows trained away from zero');

    // Interrupted and resumed (token rows in the state too, and a change of them refused): the same adapter byte for byte.
    const resumedOut = join(tmp, 'token-rows-resumed');
    assert.equal((await runCli(['finetune', '--model', narrow, '--data', data, '--out', resumedOut, ...LORA, '--stop-after', '3'])).code, 0);
    const changed = await runCli(['finetune', '--model', narrow, '--data', data, '--out', resumedOut, ...LORA, '--token-rows', 'none', '--resume']);
    assert.equal(changed.code, 2);
    assert.match(changed.stderr, /saved with mode ".*token_rows=.*"/);
    assert.equal((await runCli(['finetune', '--model', narrow, '--data', data, '--out', resumedOut, ...LORA, '--resume'])).code, 0);
    assert.deepEqual(readFileSync(join(resumedOut, 'adapter_model.safetensors')), readFileSync(join(out, 'adapter_model.safetensors')));

    const none = join(tmp, 'token-rows-none');
    assert.equal((await runCli(['finetune', '--model', narrow, '--data', data, '--out', none, ...LORA, '--token-rows', 'none'])).code, 0);
    assert.ok(!('trainable_token_indices' in (JSON.parse(readFileSync(join(none, 'adapter_config.json'), 'utf8')) as object)));
    const extra = join(tmp, 'token-rows-extra');
    assert.equal((await runCli(['finetune', '--model', narrow, '--data', data, '--out', extra, ...LORA, '--epochs', '1', '--token-rows', `${vocabulary[0]!},auto`])).code, 0);
    const withExtra = JSON.parse(readFileSync(join(extra, 'adapter_config.json'), 'utf8')) as { trainable_token_indices: Record<string, number[]> };
    assert.deepEqual(withExtra.trainable_token_indices['lm_head'], [vocabulary[0]!, ...unknown]);
  });

  it('--lora-targets: attn, experts (PEFT target_parameters), names, and the default of both', () => {
    const targets = (...flag: string[]): unknown => {
      const s = parseSettings(['--data', 'd', '--out', 'o', ...flag]);
      return s === 'help' ? s : s.targets;
    };
    assert.deepEqual(targets(), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_up_proj', 'down_proj']);
    assert.deepEqual(targets('--lora-targets', 'attn'), ['q_proj', 'k_proj', 'v_proj', 'o_proj']);
    assert.deepEqual(targets('--lora-targets', 'experts'), ['gate_up_proj', 'down_proj']);
    assert.deepEqual(targets('--lora-targets', 'q,gate_up,down_proj'), ['q_proj', 'gate_up_proj', 'down_proj']);
  });

  it('bad data and bad flags fail with one line, before any training', async () => {
    const bad = join(tmp, 'bad.jsonl');
    const fails = async (args: string[], re: RegExp): Promise<void> => {
      const r = await runCli(['finetune', '--model', base, '--out', join(tmp, 'unused'), ...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, re);
    };
    writeFileSync(bad, `${DATA}{"messages": [\n`);
    await fails(['--data', bad], /^gptoss finetune: .*bad\.jsonl:5: invalid JSON/);
    writeFileSync(bad, JSON.stringify({ messages: [{ role: 'user', content: 'x' }, { role: 'bot', content: 'y' }] }));
    await fails(['--data', bad], /bad\.jsonl:1: messages\[1\]\.role: unknown role "bot"/);
    writeFileSync(bad, JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }));
    await fails(['--data', bad], /bad\.jsonl:1: the conversation has no assistant message/);
    await fails(['--data', join(tmp, 'missing.jsonl')], /missing\.jsonl/);
    await fails(['--data', data, '--lora-targets', 'experts,router'], /--lora-targets: unknown module "router" \(expected attn, experts, or a comma list of q_proj, k_proj, v_proj, o_proj, gate_up_proj, down_proj\)/);
    await fails(['--data', data, '--full', '--lora-rank', '4'], /--full trains every weight/);
    await fails(['--data', data, '--token-rows', 'auto,x'], /--token-rows: "x" is not auto, none or a token id/);
    await fails(['--data', data, '--token-rows', '999999'], /--token-rows: token 999999 is outside the vocabulary/);
    await fails(['--data', data, '--full', '--token-rows', 'none'], /--full trains every weight; .*--token-rows are for adapters/);
    await fails(['--data', data, '--float-out', join(tmp, 'f')], /--float-out DIR goes with --full/);
    await fails(['--data', data, '--eval-split', '2'], /--eval-split/);
    await fails(['--data', data, '--precision', 'f16'], /--precision f16: expected f64 or f32/);
    const vocabulary = join(tmp, 'vocabulary.json');
    writeFileSync(vocabulary, '[1, 2]');
    await fails(['--data', data, '--vocabulary', vocabulary], /vocabulary\.json: token \d+ of .* is not in the vocabulary/);
    writeFileSync(vocabulary, '{"ids": [1]}');
    await fails(['--data', data, '--vocabulary', vocabulary], /vocabulary\.json: expected a JSON array of token ids below \d+/);
    const r = await runCli(['finetune', '--data', data]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--data FILE\.jsonl and --out DIR are required/);
  });
});

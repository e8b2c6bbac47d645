// A checkpoint's generation_config.json sets the sampling defaults: read from the folder (or the
// repository root above original/), carried by the engine, applied by generate when the caller
// sets nothing and overridden by what the caller sets; the real gpt-oss file (token ids and
// do_sample: true) changes nothing; a malformed file is one line naming it (CLI exit 2).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeGenerationDefaults, GENERATION_CONFIG_FILE, parseGenerationConfig, readGenerationDefaults } from '../../src/checkpoint/generation.ts';
import { UserError } from '../../src/errors.ts';
import { loadEngine } from '../../src/engine/local.ts';
import { DEFAULT_SAMPLING, samplingParams } from '../../src/engine/sampler.ts';
import { writeOriginalCheckpoint } from '../../src/train/export.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { TINY } from '../train/tiny.ts';
import { runCli } from '../cli/in-process.ts';

// openai/gpt-oss-20b's and -120b's generation_config.json: token ids and do_sample, no sampling values.
const GPT_OSS_FILE = { bos_token_id: 199998, do_sample: true, eos_token_id: [200002, 199999, 200012], pad_token_id: 199999, transformers_version: '4.55.0.dev0' };

let work = '';
let model = '';
before(() => {
  work = mkdtempSync(join(tmpdir(), 'gptoss-genconfig-'));
  model = join(work, 'model');
  writeOriginalCheckpoint(TrainableModel.random(TINY, 3), model);
});
after(() => rmSync(work, { recursive: true, force: true }));

const writeConfig = (dir: string, json: unknown): void => writeFileSync(join(dir, GENERATION_CONFIG_FILE), typeof json === 'string' ? json : JSON.stringify(json));

test('the sampling fields become defaults; do_sample: false is greedy; the gpt-oss file and token ids change nothing', () => {
  assert.deepEqual(parseGenerationConfig(GPT_OSS_FILE, 'g.json'), {});
  assert.deepEqual(samplingParams({}, parseGenerationConfig(GPT_OSS_FILE, 'g.json')), samplingParams());
  assert.deepEqual(parseGenerationConfig({ eos_token_id: 1 }, 'g.json'), {});
  assert.deepEqual(parseGenerationConfig({ do_sample: true, temperature: 0.6, top_p: 0.95, top_k: 20, min_p: 0.05 }, 'g.json'), { temperature: 0.6, topP: 0.95, topK: 20, minP: 0.05 });
  assert.deepEqual(parseGenerationConfig({ temperature: 0.7 }, 'g.json'), { temperature: 0.7 });
  assert.deepEqual(parseGenerationConfig({ do_sample: false, temperature: 0.7, top_p: 0.9 }, 'g.json'), { temperature: 0 });
  // The caller's fields win; an undefined one leaves the model's default.
  const model = { temperature: 0.6, topP: 0.95 };
  assert.deepEqual(samplingParams({ temperature: undefined, topK: 3 }, model), { ...DEFAULT_SAMPLING, temperature: 0.6, topP: 0.95, topK: 3 });
  assert.deepEqual(samplingParams({ temperature: 1.2, topP: 1 }, model), { ...DEFAULT_SAMPLING, temperature: 1.2, topP: 1 });
});

test('the file is read beside config.json, or at the repository root above original/', () => {
  const repo = join(work, 'repo');
  mkdirSync(join(repo, 'original'), { recursive: true });
  assert.deepEqual(readGenerationDefaults(join(repo, 'original')), {});
  writeConfig(repo, { do_sample: false });
  assert.deepEqual(readGenerationDefaults(join(repo, 'original')), { temperature: 0 });
  writeConfig(join(repo, 'original'), { temperature: 0.5 });
  assert.deepEqual(readGenerationDefaults(join(repo, 'original')), { temperature: 0.5 });
});

test('a malformed generation_config.json is one line naming the file and the field', () => {
  const dir = join(work, 'bad');
  mkdirSync(dir, { recursive: true });
  const cases: [unknown, RegExp][] = [
    ['{"temperature": 0.7', /generation_config\.json: not valid JSON/],
    [[1, 2], /generation_config\.json: expected a JSON object/],
    [{ temperature: -1 }, /generation_config\.json: "temperature" must be a number >= 0, got -1/],
    [{ temperature: '0.7' }, /"temperature" must be a number >= 0, got "0.7"/],
    [{ top_p: 0 }, /"top_p" must be a number in \(0, 1\], got 0/],
    [{ top_k: 2.5 }, /"top_k" must be an integer >= 0/],
    [{ do_sample: 'no' }, /"do_sample" must be true or false, got "no"/],
    // do_sample: false makes the values moot, but a wrong one is still named.
    [{ do_sample: false, top_p: 2 }, /"top_p" must be a number in \(0, 1\], got 2/],
  ];
  for (const [json, pattern] of cases) {
    writeConfig(dir, json);
    assert.throws(() => readGenerationDefaults(dir), (e: unknown) => {
      assert.ok(e instanceof UserError, String(e));
      assert.equal(e.kind, 'checkpoint');
      assert.equal(e.message.split('\n').length, 1, e.message);
      assert.ok(e.message.includes(join(dir, GENERATION_CONFIG_FILE)), e.message);
      assert.match(e.message, pattern);
      return true;
    });
  }
});

/** `gptoss generate` on the test checkpoint from a fixed prompt: the generated token ids. */
async function generated(flags: string[]): Promise<number[]> {
  const r = await runCli(['generate', '--model', model, '--backend', 'reference', '--tokens', '3,14,15,9,2,6', '--max-tokens', '16', '--seed', '5', '--json', ...flags]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { tokens: number[] }).tokens;
}

test('generate: the model file sets temperature and top_p when the flags do not; flags win; greedy from do_sample: false', async () => {
  rmSync(join(model, GENERATION_CONFIG_FILE), { force: true });
  const cardDefault = await generated([]);
  assert.deepEqual(cardDefault, await generated(['--temperature', '1', '--top-p', '1']));
  const greedy = await generated(['--temperature', '0']);
  const cooler = await generated(['--temperature', '0.4', '--top-p', '0.7']);
  assert.notDeepEqual(cardDefault, greedy);
  assert.notDeepEqual(cooler, cardDefault);

  writeConfig(model, { do_sample: true, temperature: 0.4, top_p: 0.7 });
  const engine = await loadEngine(model, { backend: 'reference' });
  assert.deepEqual(engine.info.sampling, { temperature: 0.4, topP: 0.7 });
  await engine.close();
  assert.deepEqual(await generated([]), cooler);
  assert.deepEqual(await generated(['--temperature', '1', '--top-p', '1']), cardDefault);
  assert.deepEqual(await generated(['--temperature', '0']), greedy);

  writeConfig(model, { do_sample: false });
  assert.deepEqual(await generated([]), greedy);
  assert.deepEqual(await generated(['--temperature', '1']), cardDefault);

  writeConfig(model, GPT_OSS_FILE);
  assert.deepEqual(await generated([]), cardDefault);

  writeConfig(model, { do_sample: false, temperature: 'hot' });
  const r = await runCli(['generate', '--model', model, '--backend', 'reference', '--tokens', '3,14', '--json']);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^gptoss generate: .*generation_config\.json: "temperature" must be a number >= 0, got "hot"\n$/);
  rmSync(join(model, GENERATION_CONFIG_FILE));
});

test('the defaults in words, as chat and serve announce them', () => {
  assert.equal(describeGenerationDefaults(parseGenerationConfig({ do_sample: false, temperature: 0.7 }, 'g.json')), 'greedy');
  assert.equal(describeGenerationDefaults(parseGenerationConfig({ temperature: 0.7, top_p: 0.9, top_k: 40 }, 'g.json')), 'temperature 0.7, top_p 0.9, top_k 40');
  assert.equal(describeGenerationDefaults(parseGenerationConfig({ eos_token_id: 200002 }, 'g.json')), undefined);
  assert.equal(describeGenerationDefaults(undefined), undefined);
});

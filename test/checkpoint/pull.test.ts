// `gptoss pull` against a local hub on 127.0.0.1 serving a small synthetic checkpoint: cache
// layout compatible with huggingface_hub, resume after a dropped connection (Range), corrupted
// files detected and deleted (exit 2), HF_TOKEN, and reuse of an existing cache.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeHub, sha256 } from './hub-server.ts';
import { pull, matchesPattern, repoFolderName } from '../../src/checkpoint/hub.ts';
import { synthesize } from '../../src/checkpoint/synth.ts';
import { SHAPES } from '../../src/checkpoint/synth.ts';
import { toHfConfigJson } from '../../src/checkpoint/hf.ts';
import { UserError } from '../../src/errors.ts';
import { main } from '../../src/cli/main.ts';

const REPO = 'openai/gpt-oss-test';
const hub = new FakeHub();
let work: string;
let cache: string;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'gptoss-pull-'));
  const config = { ...SHAPES.tiny, vocabSize: 1024, numLayers: 2 };
  const src = join(work, 'src');
  synthesize(config, src, { seed: 3 });
  hub.files = [
    { path: 'original/model.safetensors', data: readFileSync(join(src, 'model.safetensors')), lfs: true },
    { path: 'original/config.json', data: readFileSync(join(src, 'config.json')), lfs: false },
    { path: 'config.json', data: Buffer.from(JSON.stringify(toHfConfigJson(config))), lfs: false },
    { path: 'model-00000-of-00000.safetensors', data: Buffer.from('not fetched by default'), lfs: true },
    { path: 'README.md', data: Buffer.from('# test\n'), lfs: false },
  ];
  await hub.start();
});

after(async () => {
  await hub.stop();
  rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  cache = mkdtempSync(join(work, 'cache-'));
  hub.requests = [];
  hub.cutOnce.clear();
  hub.corrupt.clear();
  hub.requiredToken = undefined;
  hub.ignoreRange = false;
});

const weights = () => hub.files[0]!;
const storage = () => join(cache, repoFolderName(REPO));
const base = () => ({ repo: REPO, cacheDir: cache, endpoint: hub.endpoint, retryDelayMs: 1 });

test('pull writes the hub cache layout: blobs by hash, relative snapshot symlinks, refs/main', async () => {
  const r = await pull(base());
  assert.equal(r.commit, hub.commit);
  assert.deepEqual(r.files.map((f) => f.path).sort(), ['config.json', 'original/config.json', 'original/model.safetensors']);
  assert.ok(r.files.every((f) => f.status === 'downloaded'));
  assert.equal(readFileSync(join(storage(), 'refs', 'main'), 'utf8'), hub.commit);
  const pointer = join(storage(), 'snapshots', hub.commit, 'original', 'model.safetensors');
  assert.equal(readlinkSync(pointer), join('..', '..', '..', 'blobs', sha256(weights().data)));
  assert.ok(readFileSync(pointer).equals(weights().data));
  assert.equal(r.snapshotDir, join(storage(), 'snapshots', hub.commit));
  // Nothing half-written is left behind.
  assert.deepEqual(readdirSync(join(storage(), 'blobs')).filter((f) => f.endsWith('.incomplete')), []);
});

test('an interrupted transfer is kept and the next run resumes it with a Range request', async () => {
  hub.cutOnce.set('original/model.safetensors', 0.4);
  await assert.rejects(pull({ ...base(), retries: 0 }), (e: unknown) => e instanceof UserError && /interrupted/.test(e.message) && /resume/.test(e.message));
  const incomplete = join(storage(), 'blobs', `${sha256(weights().data)}.incomplete`);
  const kept = statSync(incomplete).size;
  assert.ok(kept > 0 && kept < weights().data.length, `kept ${kept} bytes`);

  hub.requests = [];
  const r = await pull({ ...base(), retries: 0 });
  const ranged = hub.resolveRequests().filter((q) => q.url.endsWith('original/model.safetensors'));
  assert.equal(ranged.length, 1);
  assert.equal(ranged[0]!.range, `bytes=${kept}-`);
  assert.equal(r.files.find((f) => f.path === 'original/model.safetensors')!.status, 'resumed');
  assert.ok(readFileSync(join(r.snapshotDir, 'original', 'model.safetensors')).equals(weights().data));
  assert.equal(existsSync(incomplete), false);
});

test('a dropped connection is retried within the same run, resuming where it stopped', async () => {
  hub.cutOnce.set('original/model.safetensors', 0.5);
  const warnings: string[] = [];
  const r = await pull({ ...base(), retries: 2, events: { warn: (m) => warnings.push(m) } });
  const reqs = hub.resolveRequests().filter((q) => q.url.endsWith('original/model.safetensors'));
  assert.equal(reqs.length, 2);
  assert.equal(reqs[0]!.range, undefined);
  assert.match(reqs[1]!.range ?? '', /^bytes=[1-9]\d*-$/);
  assert.ok(warnings.some((w) => /retrying from byte/.test(w)));
  assert.ok(readFileSync(join(r.snapshotDir, 'original', 'model.safetensors')).equals(weights().data));
});

test('a server that ignores Range gets a clean restart, not a doubled file', async () => {
  hub.cutOnce.set('original/model.safetensors', 0.3);
  hub.ignoreRange = true;
  const r = await pull({ ...base(), retries: 1 });
  assert.ok(readFileSync(join(r.snapshotDir, 'original', 'model.safetensors')).equals(weights().data));
});

test('a corrupted file is detected by its sha256, deleted and reported with exit status 2', async () => {
  hub.corrupt.add('original/model.safetensors');
  const saved = process.env['HF_ENDPOINT'];
  process.env['HF_ENDPOINT'] = hub.endpoint;
  const errors: string[] = [];
  const origError = console.error;
  console.error = (...args: unknown[]) => { errors.push(args.join(' ')); };
  let code: number;
  try {
    code = await main(['pull', REPO, '--cache-dir', cache, '--quiet', '--retries', '0']);
  } finally {
    console.error = origError;
    if (saved === undefined) delete process.env['HF_ENDPOINT'];
    else process.env['HF_ENDPOINT'] = saved;
  }
  assert.equal(code, 2);
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /original\/model\.safetensors: corrupted download \(sha256 [0-9a-f]{64}, expected [0-9a-f]{64}\); the file was deleted/);
  const blobs = join(storage(), 'blobs');
  assert.deepEqual(readdirSync(blobs).filter((f) => f.startsWith(sha256(weights().data))), []);
});

test('a corrupted small (non-LFS) file is caught by its git blob sha1', async () => {
  hub.corrupt.add('original/config.json');
  await assert.rejects(pull(base()), (e: unknown) => e instanceof UserError && /original\/config\.json: corrupted download \(git sha1/.test(e.message));
});

test('HF_TOKEN is sent as a bearer token; without it a gated repository is refused clearly', async () => {
  hub.requiredToken = 'hf_secret';
  const saved = process.env['HF_TOKEN'];
  delete process.env['HF_TOKEN'];
  const savedHome = process.env['HF_HOME'];
  process.env['HF_HOME'] = join(work, 'no-home'); // no token file either
  try {
    await assert.rejects(pull(base()), (e: unknown) => e instanceof UserError && /HTTP 401/.test(e.message) && /HF_TOKEN/.test(e.message));
    process.env['HF_TOKEN'] = 'hf_secret';
    hub.requests = [];
    const r = await pull(base());
    assert.equal(r.files.length, 3);
    assert.ok(hub.requests.length > 0 && hub.requests.every((q) => q.authorization === 'Bearer hf_secret'));
  } finally {
    if (saved === undefined) delete process.env['HF_TOKEN'];
    else process.env['HF_TOKEN'] = saved;
    if (savedHome === undefined) delete process.env['HF_HOME'];
    else process.env['HF_HOME'] = savedHome;
  }
});

test('files already in the cache (ours or hf download\'s) are reused without a transfer', async () => {
  // Lay the weights out as huggingface_hub would have: blob named by sha256 plus a snapshot link.
  const blob = join(storage(), 'blobs', sha256(weights().data));
  mkdirSync(join(storage(), 'blobs'), { recursive: true });
  writeFileSync(blob, weights().data);
  const link = join(storage(), 'snapshots', hub.commit, 'original', 'model.safetensors');
  mkdirSync(join(storage(), 'snapshots', hub.commit, 'original'), { recursive: true });
  symlinkSync(join('..', '..', '..', 'blobs', sha256(weights().data)), link);

  const first = await pull(base());
  assert.equal(first.files.find((f) => f.path === 'original/model.safetensors')!.status, 'cached');
  assert.equal(hub.resolveRequests().filter((q) => q.url.endsWith('model.safetensors')).length, 0);

  hub.requests = [];
  const second = await pull(base());
  assert.ok(second.files.every((f) => f.status === 'cached'));
  assert.equal(hub.resolveRequests().length, 0);
});

test('--include selects files by fnmatch patterns; unknown repositories and empty selections are user errors', async () => {
  const r = await pull({ ...base(), include: ['*.md'] });
  assert.deepEqual(r.files.map((f) => f.path), ['README.md']);
  assert.ok(matchesPattern('original/model.safetensors', 'original/*'));
  assert.ok(matchesPattern('original/model.safetensors', 'original/'));
  assert.ok(!matchesPattern('config.json', 'original/*'));
  await assert.rejects(pull({ ...base(), include: ['nothing/*'] }), (e: unknown) => e instanceof UserError && /no file matches/.test(e.message));
  await assert.rejects(pull({ ...base(), repo: 'openai/missing' }), (e: unknown) => e instanceof UserError && /not found/.test(e.message));
  await assert.rejects(pull({ ...base(), repo: '../etc' }), (e: unknown) => e instanceof UserError && /not a repository id/.test(e.message));
});

// Model resolution order: --model (folder or cached repo), GPTOSS_MODEL, the hub cache's
// gpt-oss-20b, the embedded gpt-oss-nano; a repo that is not cached is a user error naming `gptoss pull`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../src/errors.ts';
import { resolveModel } from '../../src/checkpoint/resolve.ts';

function fakeHub(): { hub: string; snapshot20b: string; cleanup: () => void } {
  const hub = mkdtempSync(join(tmpdir(), 'gptoss-hub-'));
  const repoDir = join(hub, 'models--openai--gpt-oss-20b');
  const old = join(repoDir, 'snapshots', 'aaaa');
  const main = join(repoDir, 'snapshots', 'bbbb');
  for (const s of [old, main]) {
    mkdirSync(join(s, 'original'), { recursive: true });
    writeFileSync(join(s, 'original', 'config.json'), '{}');
  }
  mkdirSync(join(repoDir, 'refs'));
  writeFileSync(join(repoDir, 'refs', 'main'), 'bbbb\n');
  return { hub, snapshot20b: join(main, 'original'), cleanup: () => rmSync(hub, { recursive: true, force: true }) };
}

const noDemo = (): { dir: string; description: string } => {
  throw new Error('the embedded model must not be used here');
};

test('--model wins, then GPTOSS_MODEL, then the hub cache, then the embedded gpt-oss-nano', async () => {
  const { hub, snapshot20b, cleanup } = fakeHub();
  const folder = mkdtempSync(join(tmpdir(), 'gptoss-model-'));
  try {
    const env = { HF_HUB_CACHE: hub, GPTOSS_MODEL: folder };
    assert.deepEqual(await resolveModel(folder, { env: {}, embeddedModel: noDemo }), { dir: folder, source: 'flag', description: folder });
    assert.equal((await resolveModel(undefined, { env, embeddedModel: noDemo })).source, 'env');
    const fromCache = await resolveModel(undefined, { env: { HF_HUB_CACHE: hub }, embeddedModel: noDemo });
    assert.equal(fromCache.source, 'hub-cache');
    assert.equal(fromCache.dir, snapshot20b);
    const byRepo = await resolveModel('openai/gpt-oss-20b', { env: { HF_HUB_CACHE: hub }, embeddedModel: noDemo });
    assert.equal(byRepo.dir, snapshot20b);
    assert.equal(byRepo.repo, 'openai/gpt-oss-20b');
    const nano = await resolveModel(undefined, { env: { HF_HUB_CACHE: join(hub, 'empty') }, embeddedModel: () => ({ dir: '/nano/dir', description: 'gpt-oss-nano: 4 layers' }) });
    assert.equal(nano.source, 'nano');
    assert.equal(nano.dir, '/nano/dir');
    assert.equal(nano.description, 'the embedded gpt-oss-nano: 4 layers (/nano/dir)');
  } finally {
    cleanup();
    rmSync(folder, { recursive: true, force: true });
  }
});

test('an uncached repo id or a missing folder is a usage error that says what to do', async () => {
  const { hub, cleanup } = fakeHub();
  try {
    await assert.rejects(resolveModel('openai/gpt-oss-120b', { env: { HF_HUB_CACHE: hub } }), (e: unknown) => e instanceof UserError && e.kind === 'usage' && /gptoss pull openai\/gpt-oss-120b/.test(e.message));
    await assert.rejects(resolveModel('./no/such/dir', { env: { HF_HUB_CACHE: hub } }), /no such folder/);
    await assert.rejects(resolveModel(undefined, { env: { HF_HUB_CACHE: hub, GPTOSS_MODEL: 'acme/missing' } }), /GPTOSS_MODEL "acme\/missing" is not in the hub cache/);
    // `--model "$UNSET"` must not silently fall back to the embedded model.
    await assert.rejects(resolveModel('', { env: { HF_HUB_CACHE: hub }, embeddedModel: () => assert.fail('the embedded model was chosen') }), (e: unknown) => e instanceof UserError && e.kind === 'usage' && /^--model is empty/.test(e.message));
  } finally {
    cleanup();
  }
});

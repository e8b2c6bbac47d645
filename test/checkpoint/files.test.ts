// Checkpoint files must be regular files: a FIFO named model.safetensors or config.json used to
// block the loader forever (opening a FIFO for reading waits for a writer). Now it is one line and
// exit status 2. The command runs in a child process, so a regression shows as a child that never
// exits; the spawn's kill timer is only the safety net that turns such a hang into a failure.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = join(import.meta.dirname, '../../bin/gptoss.js');
const GOLDEN = new URL('../fixtures/golden/gqa4-l2-e8k4/', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'gptoss-fifo-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Makes a FIFO at `path`; false when this system has no mkfifo. */
function mkfifo(path: string): boolean {
  const r = spawnSync('mkfifo', [path]);
  return r.error === undefined && r.status === 0;
}
const probe = join(work, 'probe');
const noFifo = process.platform === 'win32' || !mkfifo(probe) ? 'mkfifo is not available on this system' : false;

function gptoss(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000 });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

for (const name of ['model.safetensors', 'config.json']) {
  test(`a FIFO named ${name} is refused with one line, not waited on`, { skip: noFifo }, async () => {
    const dir = join(work, `fifo-${name.split('.')[0]}`);
    mkdirSync(dir);
    for (const f of ['config.json', 'model.safetensors']) if (f !== name) copyFileSync(join(GOLDEN, f), join(dir, f));
    assert.ok(mkfifo(join(dir, name)));
    const r = await gptoss(['logits', '--model', dir, '--tokens', '1,2', '--backend', 'reference']);
    assert.equal(r.signal, null, `the command hung and was killed: ${r.stderr}`);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.equal(lines[0], `gptoss logits: ${join(dir, name)}: is a named pipe (FIFO), not a regular file`);
  });
}

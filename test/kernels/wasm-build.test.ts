// The committed kernel modules against their sources: the .wasm files an installed package runs
// must be what the AssemblyScript (and the constants it shares with TypeScript in abi.ts) builds
// today, and every kernel the thread pool dispatches must be one of their exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { KERNEL_NAMES } from '../../src/kernels/wasm/pool.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const committed = {
  'kernels.wasm': join(root, 'src/kernels/wasm/kernels.wasm'),
  'kernels-relaxed.wasm': join(root, 'src/kernels/wasm/kernels-relaxed.wasm'),
  'train-kernels.wasm': join(root, 'src/train/wasm/train-kernels.wasm'),
};
const haveCompiler = existsSync(join(root, 'node_modules/assemblyscript/bin/asc.js'));

test('the committed .wasm files are byte for byte what the current sources build', { skip: haveCompiler ? false : 'assemblyscript (a devDependency) is not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-wasm-'));
  try {
    const r = spawnSync(process.execPath, [join(root, 'scripts/build-wasm.mjs'), '--out-dir', dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, `build-wasm failed: ${r.stderr}`);
    for (const [name, path] of Object.entries(committed)) {
      assert.ok(readFileSync(join(dir, name)).equals(readFileSync(path)), `${name} is stale: run npm run build:wasm and commit it`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every kernel the thread pool dispatches is an export of the kernel module', () => {
  const exported = WebAssembly.Module.exports(new WebAssembly.Module(readFileSync(committed['kernels.wasm']))).map((e) => e.name);
  for (const name of KERNEL_NAMES) assert.ok(exported.includes(name), `${name} is not exported (exports: ${exported.join(', ')})`);
});

test('build-wasm --out-dir without a folder is a one-line error', () => {
  const r = spawnSync(process.execPath, [join(root, 'scripts/build-wasm.mjs'), '--out-dir'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim(), 'build-wasm: --out-dir needs a folder');
});

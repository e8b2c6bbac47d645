// bin/gptoss.js picks what to run: the TypeScript source in a checkout with the tsx loader
// installed, the compiled dist/ otherwise (the installed package; see pack.test.ts), and with
// neither one line saying how to build, exit status 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/gptoss.js');

test('in a checkout with tsx installed the command runs the source, even beside a (possibly stale) dist/', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-bin-'));
  try {
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'src/cli'), { recursive: true });
    mkdirSync(join(dir, 'dist/cli'), { recursive: true });
    copyFileSync(BIN, join(dir, 'bin/gptoss.js'));
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    // Stand-in main()s that say which ran; the source one needs the TypeScript loader.
    writeFileSync(join(dir, 'src/cli/main.ts'), 'export async function main(argv: string[]): Promise<number> { process.stdout.write(`source main ${argv.join(",")}\\n`); return 0; }\n');
    writeFileSync(join(dir, 'dist/cli/main.js'), 'export async function main() { process.stdout.write("dist main\\n"); return 0; }\n');
    const r = spawnSync(process.execPath, [join(dir, 'bin/gptoss.js'), 'x'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'source main x\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without the source or a build, the command says to build and exits 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-bin-'));
  try {
    mkdirSync(join(dir, 'bin'));
    copyFileSync(BIN, join(dir, 'bin/gptoss.js'));
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
    const r = spawnSync(process.execPath, [join(dir, 'bin/gptoss.js'), '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^gptoss: dist\/ is missing; build it with `npm run build`[^\n]*\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with a build and no source, the command runs dist/', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-bin-'));
  try {
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'dist/cli'), { recursive: true });
    copyFileSync(BIN, join(dir, 'bin/gptoss.js'));
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
    // A stand-in main() that proves which file ran and what it was given.
    writeFileSync(join(dir, 'dist/cli/main.js'), 'export async function main(argv) { process.stdout.write(`dist main ${argv.join(",")}\\n`); return 3; }\n');
    const r = spawnSync(process.execPath, [join(dir, 'bin/gptoss.js'), 'a', 'b'], { encoding: 'utf8' });
    assert.equal(r.stdout, 'dist main a,b\n');
    assert.equal(r.status, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

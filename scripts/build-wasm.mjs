// Builds the WebAssembly SIMD kernels (src/kernels/wasm/assembly) with the package's own
// AssemblyScript devDependency into src/kernels/wasm/kernels.wasm. The built file is committed so
// an installed CLI runs without a build; `npm run build:wasm` (and pretest/prebench) refresh it.
// Skips the compile when the .wasm is newer than every source.
import { statSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'src/kernels/wasm/assembly');
const out = join(root, 'src/kernels/wasm/kernels.wasm');
const force = process.argv.includes('--force');

const newestSource = Math.max(...readdirSync(srcDir).map((f) => statSync(join(srcDir, f)).mtimeMs), statSync(fileURLToPath(import.meta.url)).mtimeMs);
const outputs = [out, out.replace(/\.wasm$/, '-relaxed.wasm')];
if (!force && outputs.every((f) => existsSync(f) && statSync(f).mtimeMs >= newestSource)) process.exit(0);

const ascMain = join(root, 'node_modules/assemblyscript/bin/asc.js');
if (!existsSync(ascMain)) {
  if (outputs.every((f) => existsSync(f))) process.exit(0); // installed without devDependencies: use the committed build
  console.error('build-wasm: assemblyscript is not installed (npm install) and no built kernels.wasm exists');
  process.exit(1);
}
// Two builds of the same source: baseline SIMD, and one with relaxed SIMD (byte dot products),
// which the backend picks when the runtime accepts it (ASC_FEATURE_RELAXED_SIMD selects the code).
for (const [file, extra] of [[outputs[0], []], [outputs[1], ['--enable', 'relaxed-simd']]]) {
  const args = [
    ascMain, join(srcDir, 'kernels.ts'), '-o', file,
    '--enable', 'simd', '--enable', 'threads', ...extra,
    '--importMemory', '--sharedMemory', '--initialMemory', '1', '--maximumMemory', '65536',
    '--runtime', 'stub', '--noAssert', '-O3', '--noExportMemory', '--memoryBase', '1024',
  ];
  const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('build-wasm: asc failed');
    process.exit(r.status ?? 1);
  }
  console.log(`build-wasm: wrote ${file}`);
}

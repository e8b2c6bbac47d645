// Builds the WebAssembly SIMD kernels (src/kernels/wasm/assembly, entry kernels.ts, plus the
// constants they share with the TypeScript side in src/kernels/wasm/abi.ts) with the package's own
// AssemblyScript devDependency into src/kernels/wasm/kernels.wasm, and the training kernels
// (src/train/wasm/assembly) into src/train/wasm/train-kernels.wasm. The built files are committed so
// an installed CLI runs without a build; `npm run build:wasm` (and pretest/prebench) refresh it.
// Skips the compile when the .wasm is newer than every source. `--out-dir DIR` builds all three
// into DIR instead (always; the committed files untouched), so a test can check they are current.
import { statSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'src/kernels/wasm/assembly');
const abi = join(root, 'src/kernels/wasm/abi.ts');
const outDirAt = process.argv.indexOf('--out-dir');
const outDir = outDirAt < 0 ? null : process.argv[outDirAt + 1];
if (outDir === undefined) {
  console.error('build-wasm: --out-dir needs a folder');
  process.exit(2);
}
const out = outDir === null ? join(root, 'src/kernels/wasm/kernels.wasm') : join(outDir, 'kernels.wasm');
const trainSrcDir = join(root, 'src/train/wasm/assembly');
const trainOut = outDir === null ? join(root, 'src/train/wasm/train-kernels.wasm') : join(outDir, 'train-kernels.wasm');
const force = process.argv.includes('--force') || outDir !== null;

const newest = (dir) => Math.max(...readdirSync(dir).map((f) => statSync(join(dir, f)).mtimeMs), statSync(fileURLToPath(import.meta.url)).mtimeMs);
const newestSource = Math.max(newest(srcDir), statSync(abi).mtimeMs);
const outputs = [out, out.replace(/\.wasm$/, '-relaxed.wasm')];
const fresh = (files, since) => !force && files.every((f) => existsSync(f) && statSync(f).mtimeMs >= since);
const inferenceFresh = fresh(outputs, newestSource);
const trainFresh = fresh([trainOut], newest(trainSrcDir));
if (inferenceFresh && trainFresh) process.exit(0);

const ascMain = join(root, 'node_modules/assemblyscript/bin/asc.js');
if (!existsSync(ascMain)) {
  if ([...outputs, trainOut].every((f) => existsSync(f))) process.exit(0); // installed without devDependencies: use the committed build
  console.error('build-wasm: assemblyscript is not installed (npm install) and no built kernels.wasm exists');
  process.exit(1);
}
// Two builds of the same source: baseline SIMD, and one with relaxed SIMD (byte dot products),
// which the backend picks when the runtime accepts it (ASC_FEATURE_RELAXED_SIMD selects the code).
for (const [file, extra] of inferenceFresh ? [] : [[outputs[0], []], [outputs[1], ['--enable', 'relaxed-simd']]]) {
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
// The training kernels: one thread's module with its own (unshared) memory, baseline SIMD.
if (!trainFresh) {
  const args = [
    ascMain, join(trainSrcDir, 'train-kernels.ts'), '-o', trainOut, '--enable', 'simd',
    '--importMemory', '--initialMemory', '1', '--maximumMemory', '65536', '--runtime', 'stub', '--noAssert', '-O3', '--noExportMemory',
  ];
  const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('build-wasm: asc failed on the training kernels');
    process.exit(r.status ?? 1);
  }
  console.log(`build-wasm: wrote ${trainOut}`);
}

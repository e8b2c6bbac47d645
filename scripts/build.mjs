// Builds the package for installing and publishing: the TypeScript in src/ compiled by tsc
// (tsconfig.build.json: JavaScript plus .d.ts, relative `.ts` imports rewritten to `.js`) into
// dist/, then the files the compiled code loads from beside itself at run time (the wasm kernels,
// the kernel worker, the python sandbox's runner and the chat page's static files) copied to the
// same relative places.
// `npm pack` runs it through prepack.
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');
/** Run-time files that are not TypeScript (the AssemblyScript sources are build inputs, not shipped). */
const ASSET = /\.(wasm|mjs)$/;
const SKIP_DIRS = new Set([join(src, 'kernels/wasm/assembly'), join(src, 'train/wasm/assembly')]);
/** Folders shipped whole: the chat page's files are served as they are, not compiled. */
const STATIC_DIRS = new Set([join(src, 'server/web')]);

function run(args) {
  // Progress goes to stderr: stdout stays clean for `npm pack --json`.
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: [0, 2, 2] });
  if (r.status !== 0) {
    console.error(`build: ${args.map((a) => relative(root, a) || a).join(' ')} failed`);
    process.exit(r.status ?? 1);
  }
}

function assets(dir, whole = false) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(path)) out.push(...assets(path, whole || STATIC_DIRS.has(path)));
    } else if (whole || ASSET.test(entry.name)) out.push(path);
  }
  return out;
}

run([join(root, 'scripts/build-wasm.mjs')]);
// A clean output folder: a module deleted from src must not linger in the package.
rmSync(dist, { recursive: true, force: true });
run([join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')]);
const copied = assets(src);
for (const file of copied) {
  const target = join(dist, relative(src, file));
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(file, target);
}
console.error(`build: compiled src/ into dist/ and copied ${copied.length} run-time files`);

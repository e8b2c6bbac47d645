// The package as users get it: `npm pack` (building dist/ through prepack), the tarball installed
// into a fresh project offline, imported by plain node (no TypeScript loader installed), a consumer
// type-checked under strict against the shipped .d.ts, the installed CLI run, and the README's
// library example (its first ts block, read from README.md now) compiled and run on the embedded
// gpt-oss-nano.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packAndInstall, type InstalledPackage } from '../../scripts/pack-install.ts';

const ROOT = join(import.meta.dirname, '../..');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const PUBLIC_EXPORTS = ['GptossError', 'classify', 'decode', 'encode', 'loadModel', 'parseCompletion', 'renderPrompt', 'runEval', 'startServer'];

let work: string;
let pkg: InstalledPackage;

before(() => {
  work = mkdtempSync(join(tmpdir(), 'gptoss-pack-'));
  pkg = packAndInstall(work, ['@types/node']);
});

after(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

function run(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(command, args, { cwd: pkg.project, encoding: 'utf8', input: options.input ?? '', env: options.env ?? process.env, maxBuffer: 16 * 2 ** 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The ```ts blocks of the README's "Use it as a library" section, in order. */
function readmeExamples(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Use it as a library'));
  assert.ok(section !== undefined, 'README.md has no "## Use it as a library" section');
  const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length > 0, 'the library section has no ```ts block');
  return blocks;
}

function writeTsconfig(files: string[], emit: boolean): string {
  const path = join(pkg.project, `tsconfig.${files[0]!.replace(/\.ts$/, '')}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false, types: ['node'],
        ...(emit ? { outDir: 'out' } : { noEmit: true }),
      },
      files,
    }),
  );
  return path;
}

test('the tarball holds dist/ (JavaScript, .d.ts, the run-time wasm and .mjs files and the chat page), bin/, the embedded gpt-oss-nano and its documents, README, LICENSE and nothing else', () => {
  const files = pkg.files;
  for (const f of ['package.json', 'README.md', 'LICENSE', 'bin/gptoss.js', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/kernels/wasm/kernels.wasm', 'dist/kernels/wasm/kernels-relaxed.wasm', 'dist/kernels/wasm/worker.mjs', 'dist/train/wasm/train-kernels.wasm', 'dist/tools/python/runner.mjs', 'dist/server/web/index.html', 'dist/server/web/app.js', 'dist/server/web/style.css']) {
    assert.ok(files.includes(f), `${f} is missing from the tarball`);
  }
  for (const f of ['models/gpt-oss-nano/config.json', 'models/gpt-oss-nano/model.safetensors', 'models/gpt-oss-nano/nano.json', 'examples/nano-docs/ibuprofen.md']) {
    assert.ok(files.includes(f), `${f} (the embedded gpt-oss-nano and its documents) is missing from the tarball`);
  }
  const stray = files.filter((f) => !['package.json', 'README.md', 'LICENSE'].includes(f) && !f.startsWith('bin/') && !f.startsWith('dist/') && !f.startsWith('models/gpt-oss-nano/') && !f.startsWith('examples/nano-docs/'));
  assert.deepEqual(stray, []);
  assert.deepEqual(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), []);
  // Every file the compiled code loads from beside itself (new URL('./x', import.meta.url), also
  // inside a conditional) is there.
  let loads = 0;
  for (const f of files.filter((f) => f.endsWith('.js'))) {
    const text = readFileSync(join(pkg.project, 'node_modules/gptoss', f), 'utf8');
    for (const call of text.matchAll(/new URL\(([^()]*), import\.meta\.url\)/g)) {
      for (const m of call[1]!.matchAll(/'(\.\/[^']+)'/g)) {
        // A '.ts' name is the run-from-source branch (import.meta.url ends in .ts), never taken in
        // dist/: its compiled '.js' twin must be there instead.
        const target = join(f, '..', m[1]!.endsWith('.ts') && !m[1]!.endsWith('.d.ts') ? m[1]!.replace(/\.ts$/, '.js') : m[1]!);
        // A folder (the chat page's './web/') must hold files in the tarball.
        const present = target.endsWith('/') ? files.some((file) => file.startsWith(target)) : files.includes(target);
        assert.ok(present, `${f} loads ${m[1]} at run time, but ${target} is not in the tarball`);
        loads++;
      }
    }
  }
  assert.ok(loads >= 5, `found ${loads} run-time file loads; the scan no longer sees them`);
  assert.equal(existsSync(join(pkg.project, 'node_modules/tsx')), false, 'tsx must be a devDependency only');
});

test('plain node imports the package: the public API only, internals closed by the exports map', () => {
  const r = run(process.execPath, [
    '--input-type=module',
    '-e',
    `const g = await import('gptoss');
     console.log(JSON.stringify(Object.keys(g).sort()));
     console.log(g.decode(g.encode('hello world')));
     try { await import('gptoss/dist/engine/agent.js'); console.log('internal reachable'); } catch (e) { console.log(e.code); }`,
  ]);
  assert.equal(r.status, 0, r.stderr);
  const [exportsLine, roundTrip, internal] = r.stdout.trim().split('\n');
  assert.deepEqual(JSON.parse(exportsLine!), PUBLIC_EXPORTS);
  assert.equal(roundTrip, 'hello world');
  assert.equal(internal, 'ERR_PACKAGE_PATH_NOT_EXPORTED');
});

test('the installed command runs the compiled code', () => {
  const bin = join(pkg.project, 'node_modules/.bin/gptoss');
  const r = run(bin, ['tokenize'], { input: 'hi\n' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '3686 198');
  const bad = run(bin, ['tokenize', '--no-such-flag']);
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
});

test("the GPU backend's optional 'webgpu' package installs with it and the installed command finds it", () => {
  assert.ok(existsSync(join(pkg.project, 'node_modules/webgpu/package.json')), 'webgpu was not installed');
  const golden = join(ROOT, 'test/fixtures/golden/gqa4-l2-e8k4');
  const r = run(join(pkg.project, 'node_modules/.bin/gptoss'), ['logits', '--model', golden, '--tokens', '1,2', '--backend', 'webgpu', '--json']);
  // With an adapter the logits come; without one, the error is about the adapter, never the package.
  assert.doesNotMatch(r.stderr, /needs the optional npm package/);
  if (r.status !== 0) assert.match(r.stderr, /no WebGPU adapter found/);
});

test('a consumer type-checks under strict against the shipped .d.ts, and misuse does not', () => {
  writeFileSync(
    join(pkg.project, 'consumer.ts'),
    `import { loadModel, startServer, runEval, classify, encode, decode, renderPrompt, parseCompletion, GptossError, type ChatEvent, type Model, type ToolDefinition, type ChatResult } from 'gptoss';
const tools: ToolDefinition[] = [
  { type: 'function', name: 'add', description: 'Adds one.', parameters: { type: 'object', properties: { n: { type: 'number' } } }, strict: true, handler: (args, { signal }) => (signal.aborted ? null : Number(args['n']) + 1) },
  { type: 'python' },
];
export async function answer(model: Model, signal: AbortSignal): Promise<string> {
  let text = '';
  for await (const e of model.chat([{ role: 'user', content: 'hi' }], { tools, signal, reasoningEffort: 'high', outputSchema: { type: 'object' }, sampling: { temperature: 0.7 } })) {
    const event: ChatEvent = e;
    if (event.type === 'text-delta') text += event.text;
    if (event.type === 'tool-call') text += event.name + event.arguments;
    if (event.type === 'usage') text += String(event.usage.outputTokens);
  }
  return text;
}
export async function main(): Promise<void> {
  const model = await loadModel({ backend: 'wasm', threads: 2, contextLength: 4096 });
  const done: ChatResult = await model.complete('hi');
  const server = await startServer(model, { port: 0 });
  const url: string = server.baseUrl;
  await server.close();
  const result = await runEval({ kind: 'exact', data: 'cases.jsonl', model, outDir: 'out' });
  const score: number = result.score.mean;
  const labelled = await classify(['a text', { id: 'm2', text: 'another' }], { model, policy: 'Answer 0 or 1.', labels: ['0', '1'], reasoningEffort: 'low', resultsPath: 'out.jsonl' });
  const counts: number = labelled.labelCounts.reduce((n, c) => n + c.count, 0) + labelled.results.length + labelled.failed.length;
  const gold = await runEval({ kind: 'classify', policy: 'Answer 0 or 1.', labels: ['0', '1'], data: 'gold.jsonl', model, outDir: 'out-c' });
  const recall: number | null | undefined = gold.classification?.labels[0]?.recall;
  void [counts, recall];
  const ids: number[] = encode('x');
  const messages = parseCompletion(renderPrompt('hi'));
  void [done, url, score, decode(ids), messages[0]?.channel];
  await model.close();
}
export async function scoped(): Promise<number> {
  await using model = await loadModel();
  const disposable: AsyncDisposable = model;
  void disposable;
  return model.contextLength;
}
export function codeOf(e: unknown): string | undefined {
  return e instanceof GptossError ? e.code : undefined;
}
`,
  );
  const ok = run(process.execPath, [TSC, '-p', writeTsconfig(['consumer.ts'], false)]);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);

  writeFileSync(
    join(pkg.project, 'misuse.ts'),
    `import { loadModel } from 'gptoss';
const model = await loadModel({ backend: 'cuda' });
for await (const e of model.chat('hi', { reasoningEffort: 'max' })) {
  if (e.type === 'text-delta') console.log(e.usage);
}
`,
  );
  const bad = run(process.execPath, [TSC, '-p', writeTsconfig(['misuse.ts'], false)]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stdout, /misuse\.ts\(2,.*'"cuda"' is not assignable/);
  assert.match(bad.stdout, /misuse\.ts\(3,.*'"max"' is not assignable/);
  assert.match(bad.stdout, /misuse\.ts\(4,.*Property 'usage' does not exist/);
});

test('every ts block of docs/api.md and docs/classify.md type-checks under strict against the shipped .d.ts', () => {
  const blocksOf = (doc: string): string[] => [...readFileSync(join(ROOT, 'docs', doc), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const api = blocksOf('api.md');
  const classify = blocksOf('classify.md');
  assert.ok(api.length >= 6, `docs/api.md has ${api.length} ts blocks`);
  assert.ok(classify.length >= 1, `docs/classify.md has ${classify.length} ts blocks`);
  const files = [...api, ...classify].map((code, i) => {
    const file = `doc-block-${i + 1}.ts`;
    writeFileSync(join(pkg.project, file), code);
    return file;
  });
  const r = run(process.execPath, [TSC, '-p', writeTsconfig(files, false)]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('the public declarations use no `any`', () => {
  const dts = ['index.d.ts', ...readdirSync(join(pkg.project, 'node_modules/gptoss/dist/api')).filter((f) => f.endsWith('.d.ts')).map((f) => `api/${f}`)];
  for (const f of dts) {
    const code = readFileSync(join(pkg.project, 'node_modules/gptoss/dist', f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    assert.doesNotMatch(code, /\bany\b/, `${f} uses any`);
  }
});

test("the README's library example type-checks under strict and runs as written on the embedded gpt-oss-nano (expanded from the installed package); its other blocks type-check", () => {
  const [first, ...rest] = readmeExamples();
  writeFileSync(join(pkg.project, 'example.ts'), first!);
  // The later blocks continue the first (they use its model): together they type-check too.
  writeFileSync(join(pkg.project, 'examples-all.ts'), [first, ...rest].join('\n'));
  const all = run(process.execPath, [TSC, '-p', writeTsconfig(['examples-all.ts'], false)]);
  assert.equal(all.status, 0, all.stdout + all.stderr);
  const compiled = run(process.execPath, [TSC, '-p', writeTsconfig(['example.ts'], true)]);
  assert.equal(compiled.status, 0, compiled.stdout + compiled.stderr);
  // The default chain ends at gpt-oss-nano only when no real model is configured or cached; a
  // fresh cache makes the installed package expand its own copy.
  const env: NodeJS.ProcessEnv = { ...process.env, HF_HUB_CACHE: join(work, 'empty-hub'), GPTOSS_CACHE: join(work, 'cache') };
  delete env['GPTOSS_MODEL'];
  const r = run(process.execPath, [join(pkg.project, 'out/example.js')], { env });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^model: the embedded gpt-oss-nano.*\/cache\/gpt-oss-nano-[0-9a-f]{12}\)$/m);
  assert.match(r.stdout, /^\d+ tokens$/m);
  assert.match(r.stdout, /^finished: (stop|length)$/m);
});

// Imports flow one way, and no file reaches itself through its imports. Every relative import
// specifier in src/ (static, re-exports, type-only and dynamic `import('...')`) is read from the
// source text, so the check needs no build and no script. The order is the one docs/architecture.md
// draws; a folder may import from its own rank and the ranks before it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

/**
 * Ranks, lowest first. The three root files are leaves every folder uses; src/index.ts is the public
 * surface over all. Tools sit under the engine: they know only harmony, and the agent loop runs
 * them through their own contract (tools/tool.ts). The CLI is the outermost client: it starts the
 * server and runs evals, and evals may start the server. The library API (src/api) sits beside the
 * CLI as the other client of every layer, and only src/index.ts imports it.
 */
const ORDER: readonly (readonly string[])[] = [
  ['errors.ts', 'random.ts', 'files.ts'],
  ['tokenizer'],
  ['harmony'],
  ['tensor'],
  ['kernels'],
  ['model'],
  ['checkpoint'],
  ['train'],
  ['tools'],
  ['engine'],
  ['server'],
  ['evals'],
  ['cli'],
  ['api'],
  ['index.ts'],
];

/**
 * Upward imports that remain, as "importer -> imported file" (paths under src/). Each one is a
 * known debt with its reason; an entry that no longer occurs fails the test, so the list only
 * shrinks.
 */
const ALLOWED_UPWARD: ReadonlySet<string> = new Set<string>([
  // None today. Add an entry only with the reason beside it and a TODO naming the move that removes it.
]);

interface Edge {
  from: string;
  to: string;
  specifier: string;
}

/** Every .ts/.mjs file under `dir` (AssemblyScript sources included: they import only each other). */
function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** The module specifiers a source text imports: `from '...'`, bare `import '...'` and `import('...')`. */
function importSpecifiers(text: string): string[] {
  // Block comments and whole-line comments may quote code; drop them (a trailing `// ...` after
  // code is kept, since '//' also occurs inside string literals such as URLs).
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specifiers: string[] = [];
  for (const m of code.matchAll(/\b(?:import|export)\b[^'"`;]*?\bfrom\s*(['"])([^'"]+)\1/g)) specifiers.push(m[2]!);
  for (const m of code.matchAll(/^\s*import\s*(['"])([^'"]+)\1/gm)) specifiers.push(m[2]!);
  for (const m of code.matchAll(/\bimport\s*\(\s*(['"])([^'"]+)\1\s*\)/g)) specifiers.push(m[2]!);
  return specifiers;
}

/** The relative imports between files of src/, as paths relative to src/. */
function importGraph(): Edge[] {
  const edges: Edge[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = relative(SRC, file);
    for (const specifier of importSpecifiers(readFileSync(file, 'utf8'))) {
      if (!specifier.startsWith('.')) continue;
      const to = normalize(join(dirname(from), specifier));
      if (to.startsWith('..')) throw new Error(`src/${from} imports ${specifier}, outside src/`);
      edges.push({ from, to, specifier });
    }
  }
  return edges;
}

/** The rank of a path under src/: its top folder's, or for a root file its own. */
function rankOf(path: string, order: readonly (readonly string[])[] = ORDER): number {
  const top = path.split(/[\\/]/)[0]!;
  const rank = order.findIndex((names) => names.includes(top));
  if (rank < 0) throw new Error(`src/${path}: ${top} has no place in the import order of test/architecture.test.ts (and docs/architecture.md)`);
  return rank;
}

/** Edges from a lower rank's importer to a higher rank's file, as "from -> to". */
function upwardImports(edges: readonly Edge[], order: readonly (readonly string[])[] = ORDER): string[] {
  return edges.filter((e) => rankOf(e.to, order) > rankOf(e.from, order)).map((e) => `${e.from} -> ${e.to}`);
}

/** The import cycles: each strongly connected set of two or more files (or a file importing itself), sorted. */
function importCycles(edges: readonly Edge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) {
    if (!next.has(e.from)) next.set(e.from, []);
    if (!next.has(e.to)) next.set(e.to, []);
    next.get(e.from)!.push(e.to);
  }
  // Tarjan's strongly connected components, iteratively (no recursion depth limit to worry about).
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>();
  const cycles: string[][] = [];
  let counter = 0;
  for (const start of next.keys()) {
    if (index.has(start)) continue;
    const work: [string, number][] = [[start, 0]];
    index.set(start, counter); low.set(start, counter); counter++;
    stack.push(start); onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const [node, i] = frame;
      const targets = next.get(node)!;
      if (i < targets.length) {
        frame[1]++;
        const t = targets[i]!;
        if (!index.has(t)) {
          index.set(t, counter); low.set(t, counter); counter++;
          stack.push(t); onStack.add(t);
          work.push([t, 0]);
        } else if (onStack.has(t)) {
          low.set(node, Math.min(low.get(node)!, index.get(t)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1]![0];
        low.set(parent, Math.min(low.get(parent)!, low.get(node)!));
      }
      if (low.get(node) === index.get(node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== node);
        if (component.length > 1 || targets.includes(node)) cycles.push(component.sort());
      }
    }
  }
  return cycles.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

test('the checker reads every form of import and finds upward imports and cycles', () => {
  const text = [
    "import { a } from './a.ts';",
    "import type {\n  B,\n} from '../b/b.ts';",
    "export { c } from './c.ts';",
    "import './side-effect.ts';",
    "const d = await import('../d/index.ts');",
    "// import { e } from './commented.ts';",
    "/* import { f } from './block-commented.ts'; */",
    "const url = 'https://example.com/x'; // from 'nowhere'",
  ].join('\n');
  assert.deepEqual(importSpecifiers(text).sort(), ['../b/b.ts', '../d/index.ts', './a.ts', './c.ts', './side-effect.ts']);

  const order = [['low'], ['mid'], ['high']];
  const edges: Edge[] = [
    { from: 'high/x.ts', to: 'low/y.ts', specifier: '' },
    { from: 'low/y.ts', to: 'mid/z.ts', specifier: '' },
    { from: 'mid/z.ts', to: 'mid/w.ts', specifier: '' },
  ];
  assert.deepEqual(upwardImports(edges, order), ['low/y.ts -> mid/z.ts']);
  assert.throws(() => rankOf('elsewhere/q.ts', order), /elsewhere has no place in the import order/);

  assert.deepEqual(importCycles(edges), []);
  const cyclic = [...edges, { from: 'mid/w.ts', to: 'low/y.ts', specifier: '' }, { from: 'high/x.ts', to: 'high/x.ts', specifier: '' }];
  assert.deepEqual(importCycles(cyclic), [['high/x.ts'], ['low/y.ts', 'mid/w.ts', 'mid/z.ts']]);
});

test('imports flow one way: no folder imports a folder later in the order', () => {
  const edges = importGraph();
  assert.ok(edges.length > 100, `only ${edges.length} imports found in src/: the reader is broken`);
  const upward = upwardImports(edges);
  const unexpected = upward.filter((u) => !ALLOWED_UPWARD.has(u));
  assert.deepEqual(unexpected, [], `imports against the order ${ORDER.map((r) => r.join('/')).join(' -> ')}`);
  const stale = [...ALLOWED_UPWARD.keys()].filter((u) => !upward.includes(u));
  assert.deepEqual(stale, [], 'allowed exceptions that no longer occur: remove them from ALLOWED_UPWARD');
});

test('no import cycles between files of src/', () => {
  const cycles = importCycles(importGraph());
  assert.deepEqual(cycles, [], `files that import each other (directly or through others):\n${cycles.map((c) => c.join(' <-> ')).join('\n')}`);
});

/**
 * The files under src/ other than the loop's own (engine/agent.ts) and the turn API's
 * (engine/turn.ts) that name the agent loop's session in code: every front end (chat, server,
 * library, evals) runs turns through prepareTurn/runTurn, never the loop directly.
 */
function agentLoopBypasses(files: ReadonlyMap<string, string>): string[] {
  const own = new Set(['engine/agent.ts', 'engine/turn.ts']);
  const found: string[] = [];
  for (const [path, text] of files) {
    if (own.has(path.split(/[\\/]/).join('/'))) continue;
    const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    if (/\bAgentSession\b/.test(code)) found.push(path);
  }
  return found.sort();
}

test('the bypass check finds a front end that holds the agent loop itself, and ignores comments', () => {
  const files = new Map([
    ['engine/turn.ts', "import { AgentSession } from './agent.ts';"],
    ['cli/chat.ts', "import { AgentSession } from '../engine/agent.ts';\nconst s = new AgentSession(engine);"],
    ['server/app.ts', "// unlike AgentSession, ...\nimport { runTurn } from '../engine/turn.ts';"],
    ['api/chat.ts', 'import type { AgentSession } from "../engine/agent.ts";'],
  ]);
  assert.deepEqual(agentLoopBypasses(files), ['api/chat.ts', 'cli/chat.ts']);
});

test('every front end runs turns through the turn API: only engine/turn.ts holds the agent loop', () => {
  const files = new Map(sourceFiles(SRC).map((f) => [relative(SRC, f), readFileSync(f, 'utf8')] as const));
  assert.deepEqual(agentLoopBypasses(files), [], 'these files drive AgentSession directly instead of prepareTurn/runTurn (src/engine/turn.ts)');
});

// `npm run bench`: writes its sections of docs/BENCHMARKS.md (each between its marker comments,
// bench/document.ts; the hand-written rest of the page is kept). Each section is a function
// returning markdown; areas add theirs here (the tokenizer's and the server's are loaded when their
// bench files exist). The inference section synthesises gpt-oss-20b-shaped checkpoints with random
// weights, converts them to GGUF for node-llama-cpp (installed on demand into .cache/peer), and
// measures both engines one after the other (never at the same time: RAM) in child processes.
//
// Options (after `npm run bench --`):
//   --layers 4,24        checkpoint depths (default 4,24)
//   --threads 1,2        thread counts (default 1,2)
//   --prompt-tokens N    default 512          --gen-tokens N   default 64
//   --sections a,b       only these sections (machine, inference, tokenizer, serving, startup, training);
//                        the others keep what the page has
//   --skip-peer          ours only           --keep            keep the synthetic checkpoints
//   --out FILE           default docs/BENCHMARKS.md
//   --note TEXT          a remark on the run's conditions, printed under the machine
//   --repeat N           run each engine N times, interleaved, and keep each one's best decode (default 1)
import { execSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, mkdirSync, statSync } from 'node:fs';
import { cpus, totalmem, freemem, availableParallelism } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { scriptFlags } from '../scripts/flags.ts';
import type { BenchResult, OpProfile } from '../src/cli/bench.ts';
import { writeSections } from './document.ts';
import { runPeer, PEER_VERSION, type PeerResult } from './peer-llama.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'bin/gptoss.js');

export interface BenchSection {
  /** Short name for --sections. */
  name: string;
  /** Markdown (starting with a "## " heading). */
  run(): Promise<string>;
}

const { values: flags } = scriptFlags('bench', {
  layers: { type: 'string' }, threads: { type: 'string' }, 'prompt-tokens': { type: 'string' }, 'gen-tokens': { type: 'string' },
  sections: { type: 'string' }, 'skip-peer': { type: 'boolean' }, keep: { type: 'boolean' }, out: { type: 'string' },
  note: { type: 'string' }, repeat: { type: 'string' },
});
const list = (s: string | undefined, d: number[]): number[] => (s === undefined ? d : s.split(',').map(Number));
const LAYERS = list(flags.layers, [4, 24]);
const THREADS = list(flags.threads, [1, 2]);
const PROMPT = Number(flags['prompt-tokens'] ?? 512);
const GEN = Number(flags['gen-tokens'] ?? 64);
const REPEAT = Math.max(1, Number(flags.repeat ?? 1));
const CACHE = join(ROOT, '.cache/bench');

const log = (msg: string): void => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const gb = (b: number): string => (b / 1e9).toFixed(2);
const f2 = (x: number): string => x.toFixed(2);

function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`gptoss ${args.join(' ')} failed: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  return r.stdout;
}

function machineSection(): BenchSection {
  return {
    name: 'machine',
    async run() {
      let model = cpus()[0]?.model ?? 'unknown';
      try {
        const m = /Model name:\s*(.+)/.exec(execSync('lscpu', { encoding: 'utf8' }));
        if (m !== null) model = m[1]!.trim();
      } catch { /* lscpu missing: keep os.cpus() */ }
      let load = '';
      try {
        load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
      } catch { /* not Linux */ }
      return [
        '## Machine',
        '',
        `- Date: ${new Date().toISOString()}`,
        `- CPU: ${model}, ${availableParallelism()} cores`,
        `- RAM: ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
        `- Node ${process.version}`,
        `- Load average when the run started: ${load}`,
        ...(flags.note === undefined ? [] : ['', flags.note]),
        '',
      ].join('\n');
    },
  };
}

/** Writes the GGUF through `gptoss convert --to gguf`, or its module when the command is not registered. */
async function convertGguf(dir: string, gguf: string): Promise<void> {
  try {
    cli(['convert', '--to', 'gguf', '--model', dir, '--out', gguf]);
    return;
  } catch (e) {
    const modulePath = join(ROOT, 'src/checkpoint/gguf-convert.ts');
    if (!existsSync(modulePath)) throw e;
    const mod = (await import(pathToFileURL(modulePath).href)) as { convertToGguf?: (d: string, o: string) => Promise<unknown> };
    if (mod.convertToGguf === undefined) throw e;
    await mod.convertToGguf(dir, gguf);
  }
}

/** A 20b-shaped synthetic checkpoint with `layers` layers (and its GGUF), made once and cached. */
async function checkpoint(layers: number): Promise<{ dir: string; gguf: string | null }> {
  const dir = join(CACHE, `20b-l${layers}`);
  if (!existsSync(join(dir, 'config.json')) || !existsSync(join(dir, 'gptoss.json'))) {
    log(`synth 20b --layers ${layers} -> ${dir}`);
    rmSync(dir, { recursive: true, force: true });
    cli(['synth', '--shape', '20b', '--layers', String(layers), '--out', dir, '--quiet']);
  }
  const gguf = join(CACHE, `20b-l${layers}.gguf`);
  if (!existsSync(gguf)) {
    log(`convert --to gguf -> ${gguf}`);
    try {
      await convertGguf(dir, gguf);
    } catch (e) {
      log(`GGUF conversion unavailable: ${(e as Error).message}`);
      return { dir, gguf: null };
    }
  }
  return { dir, gguf };
}

/** MemAvailable from /proc/meminfo (bytes), or os.freemem() elsewhere. */
function availableMemory(): number {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m !== null) return Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  return freemem();
}

/** The machine is shared: wait (up to 20 minutes) until `bytes` are available before a big run. */
function waitForMemory(bytes: number, what: string): void {
  const deadline = Date.now() + 20 * 60_000;
  let logged = false;
  while (availableMemory() < bytes && Date.now() < deadline) {
    if (!logged) log(`${what}: waiting for ${gb(bytes)} GB of free memory (${gb(availableMemory())} GB available)`);
    logged = true;
    spawnSync('sleep', ['15']);
  }
}

/** Bytes of the checkpoint's tensors (its .safetensors files). */
function checkpointBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) if (name.endsWith('.safetensors')) total += statSync(join(dir, name)).size;
  return total;
}

function ours(dir: string, threads: number, acts: 'q8' | 'split' = 'q8'): BenchResult {
  const out = cli(['bench', '--model', dir, '--threads', String(threads), '--prompt-tokens', String(PROMPT), '--gen-tokens', String(GEN), '--json', '--profile', '--expert-activations', acts]);
  return JSON.parse(out.trim().split('\n').pop()!) as BenchResult;
}

function profileTable(p: OpProfile, totalMs: number): string[] {
  const rows = Object.entries(p).sort((a, b) => b[1].ms - a[1].ms);
  const sum = rows.reduce((s, [, v]) => s + v.ms, 0);
  return [
    '| op | ms | share | calls |',
    '|---|---:|---:|---:|',
    ...rows.map(([op, v]) => `| ${op} | ${v.ms.toFixed(0)} | ${((100 * v.ms) / totalMs).toFixed(1)}% | ${v.calls} |`),
    `| other (embedding, routing, glue) | ${(totalMs - sum).toFixed(0)} | ${((100 * (totalMs - sum)) / totalMs).toFixed(1)}% | |`,
  ];
}

function inferenceSection(): BenchSection {
  return {
    name: 'inference',
    async run() {
      const lines: string[] = [
        '## Inference: ours (wasm backend) vs node-llama-cpp, gpt-oss-20b shape, random weights',
        '',
        `Synthetic checkpoints from \`gptoss synth --shape 20b --layers N\` (hidden 2880, 32 experts top-4, BF16 attention, embedding and unembedding, MXFP4 experts), ` +
        `GGUF from \`gptoss convert --to gguf\` for node-llama-cpp ${PEER_VERSION} (prebuilt CPU binary, no mmap). ` +
        `Prompt ${PROMPT} pseudo-random tokens, then ${GEN} greedy decode steps. Each engine runs alone in its own process; peak RSS is that process's.` +
        (REPEAT > 1 ? ` Each engine ran ${REPEAT} times, interleaved with the others; each row is that engine's run with the best decode speed.` : ''),
        `"gptoss wasm" is the default configuration: expert activations quantised to int8 per group of 32 ('q8'), the arithmetic llama.cpp uses for MXFP4 (its logits stay within the golden cases' tolerance for the official bf16 reference); "exact (split)" is \`--expert-activations split\`, whose logits match the official f32 reference (the golden parity suite runs in this mode).`,
        `The decode ceiling is weight bytes read per decoded token over the memory read bandwidth measured in the same run.`,
        '',
        '| layers | threads | engine | load s | prefill tok/s | TTFT s | decode tok/s | decode ceiling tok/s | bandwidth GB/s | peak RSS GB |',
        '|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|',
      ];
      const ratios: string[] = ['', '| layers | threads | ours | prefill ours/peer | decode ours/peer | decode ours/ceiling |', '|---:|---:|---|---:|---:|---:|'];
      const profiles: string[] = [];
      const notes: string[] = [];
      // Every run's speeds, so the page shows how far repeated runs of one engine differ.
      const spread: string[] = [];
      const results = new Map<string, { o: BenchResult | null; p: PeerResult | null; exact: BenchResult | null }>();
      for (const layers of LAYERS) {
        const { dir, gguf } = await checkpoint(layers);
        if (gguf === null) notes.push(`- ${layers} layers: no GGUF (\`gptoss convert --to gguf\` not available), node-llama-cpp not measured.`);
        for (const threads of THREADS) {
          const need = checkpointBytes(dir) + 1.5e9;
          // Each engine REPEAT times, interleaved (ours, exact, peer, ours, ...); the run with the
          // best decode speed of each is kept, so a disturbed run does not decide a ratio.
          const best = <T extends { decode_tok_s: number }>(a: T | null, b: T | null): T | null => (a === null ? b : b === null || a.decode_tok_s >= b.decode_tok_s ? a : b);
          const runs = new Map<string, { prefill: number[]; decode: number[] }>();
          const measure = <T extends { prefill_tok_s: number; decode_tok_s: number },>(what: string, run: () => T): T | null => {
            waitForMemory(need, `${what}, ${layers} layers`);
            log(`${what}: ${layers} layers, ${threads} thread(s)`);
            try {
              const result = run();
              const seen = runs.get(what) ?? { prefill: [], decode: [] };
              seen.prefill.push(result.prefill_tok_s);
              seen.decode.push(result.decode_tok_s);
              runs.set(what, seen);
              return result;
            } catch (e) {
              notes.push(`- ${what}, ${layers} layers, ${threads} thread(s): failed: ${(e as Error).message}`);
              return null;
            }
          };
          let o: BenchResult | null = null, exact: BenchResult | null = null, p: PeerResult | null = null;
          for (let rep = 0; rep < REPEAT; rep++) {
            o = best(o, measure('ours', () => ours(dir, threads)));
            // The exact mode ('split' expert activations: f32-grade results) beside the default.
            if (threads === Math.max(...THREADS)) exact = best(exact, measure('ours (split expert activations)', () => ours(dir, threads, 'split')));
            if (gguf !== null && flags['skip-peer'] !== true) p = best(p, measure('node-llama-cpp', () => runPeer(gguf, PROMPT, GEN, threads)));
          }
          if (o !== null) {
            lines.push(`| ${layers} | ${threads} | gptoss wasm | ${f2(o.load_s)} (files read in ${f2(o.read_s)}) | ${f2(o.prefill_tok_s)} | ${f2(o.ttft_s)} | ${f2(o.decode_tok_s)} | ${f2(o.decode_ceiling_tok_s)} | ${f2(o.bandwidth_gb_s)} | ${gb(o.peak_rss_bytes)} |`);
            if (o.profile !== undefined) {
              profiles.push(`### Profile: ${layers} layers, ${threads} thread(s)`, '', `Prefill (${PROMPT} tokens, ${(o.prefill_s * 1000).toFixed(0)} ms):`, '', ...profileTable(o.profile.prefill, o.prefill_s * 1000), '');
              const decodeMs = (GEN / o.decode_tok_s) * 1000;
              profiles.push(`Decode (${GEN} tokens, ${decodeMs.toFixed(0)} ms):`, '', ...profileTable(o.profile.decode, decodeMs), '');
            }
          }
          if (exact !== null) lines.push(`| ${layers} | ${threads} | gptoss wasm, exact (split) | ${f2(exact.load_s)} | ${f2(exact.prefill_tok_s)} | ${f2(exact.ttft_s)} | ${f2(exact.decode_tok_s)} | ${f2(exact.decode_ceiling_tok_s)} | ${f2(exact.bandwidth_gb_s)} | ${gb(exact.peak_rss_bytes)} |`);
          if (p !== null) lines.push(`| ${layers} | ${threads} | node-llama-cpp | ${f2(p.load_s)} | ${f2(p.prefill_tok_s)} | ${f2(p.ttft_s)} | ${f2(p.decode_tok_s)} | | | ${gb(p.peak_rss_bytes)} |`);
          results.set(`${layers}/${threads}`, { o, p, exact });
          const range = (xs: number[]): string => (xs.length === 0 ? 'n/a' : `${f2(Math.min(...xs))}-${f2(Math.max(...xs))} (${((100 * (Math.max(...xs) - Math.min(...xs))) / Math.max(...xs)).toFixed(0)}%)`);
          if (REPEAT > 1) for (const [what, seen] of runs) spread.push(`| ${layers} | ${threads} | ${what} | ${seen.decode.length} | ${range(seen.prefill)} | ${range(seen.decode)} |`);
          const r = (a: number, b: number | undefined): string => (b === undefined || b === 0 ? 'n/a' : `${(a / b).toFixed(2)}x`);
          if (o !== null) ratios.push(`| ${layers} | ${threads} | gptoss (q8) | ${r(o.prefill_tok_s, p?.prefill_tok_s)} | ${r(o.decode_tok_s, p?.decode_tok_s)} | ${r(o.decode_tok_s, o.decode_ceiling_tok_s)} |`);
          if (exact !== null) ratios.push(`| ${layers} | ${threads} | gptoss exact (split) | ${r(exact.prefill_tok_s, p?.prefill_tok_s)} | ${r(exact.decode_tok_s, p?.decode_tok_s)} | ${r(exact.decode_tok_s, exact.decode_ceiling_tok_s)} |`);
        }
        if (flags.keep !== true && layers > 4) {
          rmSync(dir, { recursive: true, force: true });
          if (gguf !== null) rmSync(gguf, { force: true });
        }
      }
      // The targets, judged on the deepest model with the most threads.
      const L = Math.max(...LAYERS), T = Math.max(...THREADS);
      const main = results.get(`${L}/${T}`);
      const targets: string[] = [];
      if (main?.o != null) {
        const o = main.o, p = main.p;
        const mark = (ok: boolean): string => (ok ? 'met' : 'not met');
        targets.push(`### Targets (${L} layers, ${T} threads)`, '', '| target | measured | |', '|---|---|---|');
        if (p !== null) {
          targets.push(`| decode >= 1.0x node-llama-cpp | ${(o.decode_tok_s / p.decode_tok_s).toFixed(2)}x | ${mark(o.decode_tok_s >= p.decode_tok_s)} |`);
          targets.push(`| prefill (${PROMPT}-token prompt) >= 0.8x node-llama-cpp | ${(o.prefill_tok_s / p.prefill_tok_s).toFixed(2)}x | ${mark(o.prefill_tok_s >= 0.8 * p.prefill_tok_s)} |`);
          if (main.exact !== null) targets.push(`| (exact mode) decode, prefill vs node-llama-cpp | ${(main.exact.decode_tok_s / p.decode_tok_s).toFixed(2)}x, ${(main.exact.prefill_tok_s / p.prefill_tok_s).toFixed(2)}x | for information |`);
        }
        targets.push(`| decode >= 80% of the decode ceiling | ${((100 * o.decode_tok_s) / o.decode_ceiling_tok_s).toFixed(0)}% | ${mark(o.decode_tok_s >= 0.8 * o.decode_ceiling_tok_s)} |`);
        targets.push(`| peak RSS <= 13.5 GB | ${gb(o.peak_rss_bytes)} GB (${(o.peak_rss_bytes / 2 ** 30).toFixed(2)} GiB) | ${mark(o.peak_rss_bytes <= 13.5e9)} (${o.peak_rss_bytes <= 13.5 * 2 ** 30 ? 'met' : 'not met'} in GiB) |`);
        targets.push(`| load <= 1.5x reading the files | ${(o.load_s / o.read_s).toFixed(2)}x (${f2(o.load_s)} s vs ${f2(o.read_s)} s) | ${mark(o.load_s <= 1.5 * o.read_s)} |`);
        targets.push('');
      }
      const spreadTable = spread.length === 0 ? [] : [
        '### Run-to-run spread', '', `Every run of each engine (min-max tok/s, and the range as a share of the max); the tables above keep each engine's best decode.`, '',
        '| layers | threads | engine | runs | prefill tok/s | decode tok/s |', '|---:|---:|---|---:|---|---|', ...spread, '',
      ];
      return [...lines, ...ratios, '', ...targets, ...spreadTable, ...(notes.length > 0 ? ['Notes:', '', ...notes, ''] : []), ...profiles].join('\n');
    },
  };
}

/** A section from an optional bench module of another area, if that file exists. */
function optionalSection(name: string, file: string, fn: string): BenchSection | null {
  const path = join(ROOT, 'bench', file);
  if (!existsSync(path)) return null;
  return {
    name,
    async run() {
      const mod = (await import(pathToFileURL(path).href)) as Record<string, (() => Promise<{ markdown: string } | string>) | undefined>;
      const f = mod[fn];
      if (f === undefined) return '';
      const r = await f();
      return typeof r === 'string' ? r : r.markdown;
    },
  };
}

const sections: BenchSection[] = [
  machineSection(),
  inferenceSection(),
  optionalSection('tokenizer', 'tokenizer.ts', 'runTokenizerBench'),
  optionalSection('serving', 'serving.ts', 'runServingBench'),
  optionalSection('startup', 'startup.ts', 'runStartupBench'),
  optionalSection('training', 'train.ts', 'runTrainingBench'),
].filter((s): s is BenchSection => s !== null);

const only = flags.sections?.split(',');
const outFile = flags.out ?? join(ROOT, 'docs/BENCHMARKS.md');
mkdirSync(CACHE, { recursive: true });
const measured = new Map<string, string>();
for (const s of sections) {
  if (only !== undefined && !only.includes(s.name)) continue;
  log(`section ${s.name}`);
  try {
    measured.set(s.name, await s.run());
  } catch (e) {
    // The section keeps its previous figures; the run says it failed.
    log(`section ${s.name} failed, left as it was: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
writeSections(outFile, measured);
log(`wrote ${[...measured.keys()].join(', ') || 'no sections'} into ${outFile} (${statSync(outFile).size} bytes)`);

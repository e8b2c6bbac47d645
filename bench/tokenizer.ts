// Tokenizer benchmark: o200k encode throughput (MB/s of UTF-8 input) of ours, gpt-tokenizer and
// js-tiktoken on the same corpus in one process, best of N passes, plus each one's load time.
// Standalone: node --import tsx bench/tokenizer.ts [--passes N] [--mb SIZE]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { samples } from '../test/tokenizer/corpus.ts';

export interface TokenizerBenchRow {
  tokenizer: string;
  loadMs: number;
  /** first pass over the corpus (empty caches) */
  coldMBps: number;
  /** best of the passes */
  bestMBps: number;
  tokens: number;
  /** ids identical to ours on every chunk */
  sameIds: boolean;
}

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');

function take(files: string[], maxBytes: number, read: (f: string) => string): string {
  let out = '';
  for (const f of files) {
    if (out.length >= maxBytes) break;
    out += `${read(f)}\n`;
  }
  return out.slice(0, maxBytes);
}

function markdownFiles(dir: string, depth: number, out: string[]): string[] {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (st === undefined) continue;
    if (st.isDirectory() && depth > 0) markdownFiles(path, depth - 1, out);
    else if (st.isFile() && /\.md$/i.test(name) && st.size > 2000) out.push(path);
  }
  return out;
}

/** English prose (package READMEs), TypeScript declarations, and CJK/Korean/Russian messages. */
export function buildCorpus(megabytes = 3): { name: string; text: string }[] {
  const budget = megabytes * 1e6;
  const nm = join(ROOT, 'node_modules');
  const ts = join(nm, 'typescript', 'lib');
  const messages = (lang: string): string => {
    const json = JSON.parse(readFileSync(join(ts, lang, 'diagnosticMessages.generated.json'), 'utf8')) as Record<string, string>;
    return Object.values(json).join('\n');
  };
  return [
    { name: 'prose', text: take(markdownFiles(nm, 8, []), budget * 0.4, (f) => readFileSync(f, 'utf8')) },
    { name: 'code', text: take([join(ts, 'lib.dom.d.ts'), join(ts, 'lib.es5.d.ts')], budget * 0.3, (f) => readFileSync(f, 'utf8')) },
    { name: 'cjk+ko+ru', text: take(['ja', 'zh-cn', 'ko', 'ru'], budget * 0.3, messages).slice(0, budget * 0.25) + samples.join('\n') },
  ];
}

/** ~4 KB pieces (message-sized), never splitting a surrogate pair. */
function chunk(text: string, size = 4096): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; ) {
    let end = Math.min(text.length, i + size);
    if (end < text.length && /[\ud800-\udbff]/.test(text[end - 1]!)) end++;
    out.push(text.slice(i, end));
    i = end;
  }
  return out;
}

interface Candidate {
  name: string;
  load: () => Promise<(text: string) => number[]>;
  passes: number;
}

export async function runTokenizerBench(opts: { passes?: number; megabytes?: number } = {}): Promise<{ rows: TokenizerBenchRow[]; markdown: string }> {
  const passes = opts.passes ?? 5;
  const corpus = buildCorpus(opts.megabytes ?? 3);
  const chunks = corpus.flatMap((c) => chunk(c.text));
  const bytes = corpus.reduce((n, c) => n + Buffer.byteLength(c.text), 0);
  const candidates: Candidate[] = [
    {
      name: 'gptoss (ours)',
      passes,
      load: async () => {
        const { getTokenizer } = await import('../src/tokenizer/index.ts');
        const tok = getTokenizer();
        return (t) => tok.encodeOrdinary(t);
      },
    },
    {
      name: 'gpt-tokenizer 4.0.0',
      passes,
      load: async () => {
        const { encode } = await import('gpt-tokenizer/encoding/o200k_harmony');
        const none = new Set<string>();
        return (t) => encode(t, { disallowedSpecial: none });
      },
    },
    {
      name: 'js-tiktoken 1.0.21',
      passes: Math.min(passes, 2), // ~0.5 MB/s: two passes already take long
      load: async () => {
        const { Tiktoken } = await import('js-tiktoken/lite');
        const ranks = (await import('js-tiktoken/ranks/o200k_base')).default;
        const enc = new Tiktoken(ranks);
        return (t) => enc.encode(t, [], []);
      },
    },
  ];
  // Load everything first, then interleave the passes so that load from other processes on the
  // machine falls on every tokenizer alike.
  const loaded: { c: Candidate; encode: (text: string) => number[]; loadMs: number; times: number[]; ids: number[][] }[] = [];
  for (const c of candidates) {
    const t0 = performance.now();
    const encode = await c.load();
    encode('warm up the loader');
    loaded.push({ c, encode, loadMs: performance.now() - t0, times: [], ids: [] });
  }
  for (let p = 0; p < passes; p++) {
    for (const l of loaded) {
      if (p >= l.c.passes) continue;
      const start = performance.now();
      l.ids = chunks.map(l.encode);
      l.times.push(performance.now() - start);
    }
  }
  const reference = loaded[0]!.ids;
  const mbps = (ms: number): number => bytes / 1e6 / (ms / 1000);
  const rows: TokenizerBenchRow[] = loaded.map((l) => ({
    tokenizer: l.c.name,
    loadMs: Math.round(l.loadMs),
    coldMBps: round2(mbps(l.times[0]!)),
    bestMBps: round2(mbps(Math.min(...l.times))),
    tokens: l.ids.reduce((n, a) => n + a.length, 0),
    sameIds: l.ids.length === reference.length && l.ids.every((a, i) => a.length === reference[i]!.length && a.every((v, j) => v === reference[i]![j])),
  }));
  const gpt = rows.find((r) => r.tokenizer.startsWith('gpt-tokenizer'))!;
  const ours = rows[0]!;
  // one pathological piece (a 20 000-letter run): BPE merge cost, where a quadratic merge shows
  const long = 'x'.repeat(20000);
  const longMs = loaded.slice(0, 2).map((l) => {
    const start = performance.now();
    l.encode(long);
    return Math.round(performance.now() - start);
  });
  const lines = [
    '## Tokenizer',
    '',
    `o200k encode throughput, one process, single thread. Machine: ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}; load average at the end ${loadavg()[0]!.toFixed(1)} (other work on the machine slows every row alike: the passes are interleaved).`,
    `Corpus: ${(bytes / 1e6).toFixed(2)} MB UTF-8 in ${chunks.length} chunks of ~4 KB (${corpus.map((c) => `${c.name} ${(Buffer.byteLength(c.text) / 1e6).toFixed(2)} MB`).join(', ')}); best of ${passes} interleaved passes (js-tiktoken ${Math.min(passes, 2)}); cold = first pass, caches empty. Load = import + building the tables.`,
    '',
    '| tokenizer | load ms | cold MB/s | best MB/s | vs gpt-tokenizer | tokens | ids = ours |',
    '|---|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.tokenizer} | ${r.loadMs} | ${r.coldMBps} | ${r.bestMBps} | ${(r.bestMBps / gpt.bestMBps).toFixed(2)}× | ${r.tokens} | ${r.sameIds ? 'yes' : 'NO'} |`),
    '',
    `One pathological piece, 'x' × 20 000: ours ${longMs[0]} ms, gpt-tokenizer ${longMs[1]} ms (js-tiktoken not run: its merge is quadratic and takes minutes at 50 000).`,
    '',
    `Ours is ${(ours.bestMBps / gpt.bestMBps).toFixed(2)}× gpt-tokenizer (the fastest o200k tokenizer on npm) on this corpus. Run alone: \`node --import tsx bench/tokenizer.ts [--passes N] [--mb SIZE]\`.`,
  ];
  return { rows, markdown: lines.join('\n') };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  const flag = (name: string): number | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? Number(argv[i + 1]) : undefined;
  };
  const { markdown } = await runTokenizerBench({ passes: flag('passes'), megabytes: flag('mb') });
  console.log(markdown);
}

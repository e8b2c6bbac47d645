// Serving benchmark (section of `npm run bench`, or alone: `node --import tsx bench/serve.ts`):
// aggregate tokens/s and p50/p95 time to first token for 1, 4 and 16 concurrent streaming clients
// (the official openai client, Chat Completions) against `gptoss serve` in-process, on a synthetic
// checkpoint (tiny shape: full vocabulary, 4 layers, random weights) with the wasm engine. Random
// weights write no harmony, so the engine's logits are post-edited to open a final message and
// then write only text tokens: every forward pass is real, and the answer streams like a real one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import OpenAI from 'openai';
import { DelegatingEngine, type Engine, type StepRequest } from '../src/engine/engine.ts';
import { loadEngine } from '../src/engine/local.ts';
import { SHAPES, synthesize } from '../src/checkpoint/synth.ts';
import { createServer } from '../src/server/index.ts';
import { SPECIAL, getTokenizer } from '../src/tokenizer/index.ts';

const GEN_TOKENS = 32;
const CLIENTS = [1, 4, 16];

/** Real forward passes; the logits are edited so the completion is `<|channel|>final<|message|>` + text. */
class HarmonyShaped extends DelegatingEngine {
  private readonly assistant = getTokenizer().encodeOrdinary('assistant')[0]!;
  private readonly final = getTokenizer().encodeOrdinary('final')[0]!;
  override async step(batch: readonly StepRequest[]): Promise<Float32Array[]> {
    const out = await this.inner.step(batch);
    return out.map((logits, i) => {
      const fed = batch[i]!.sequence.tokens;
      const last = fed[fed.length - 1];
      const prev = fed[fed.length - 2];
      let forced: number | undefined;
      if (last === this.assistant && prev === SPECIAL.start) forced = SPECIAL.channel;
      else if (last === SPECIAL.channel) forced = this.final;
      else if (last === this.final && prev === SPECIAL.channel) forced = SPECIAL.message;
      if (forced !== undefined) {
        logits.fill(-Infinity);
        logits[forced] = 0;
      } else logits.fill(-Infinity, 199998);
      return logits;
    });
  }
}

interface Run {
  clients: number;
  tokens: number;
  seconds: number;
  ttft: number[];
}

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

async function streamOne(client: OpenAI, content: string): Promise<{ tokens: number; ttft: number }> {
  const started = performance.now();
  let ttft = -1;
  let tokens = 0;
  const stream = await client.chat.completions.create({
    model: 'bench',
    messages: [{ role: 'user', content }],
    max_tokens: GEN_TOKENS,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  for await (const chunk of stream) {
    if (ttft < 0 && (chunk.choices[0]?.delta.content ?? '') !== '') ttft = performance.now() - started;
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  return { tokens, ttft };
}

/** `clients` streams at once, each asking `rounds` questions in a row. */
async function measure(client: OpenAI, clients: number, rounds: number): Promise<Run> {
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const out = [];
      for (let r = 0; r < rounds; r++) out.push(await streamOne(client, `Question ${c}-${r}: describe the number ${c * 97 + r * 13} in a few words.`));
      return out;
    }),
  );
  const flat = results.flat();
  return { clients, tokens: flat.reduce((s, x) => s + x.tokens, 0), seconds: (performance.now() - started) / 1000, ttft: flat.map((x) => x.ttft) };
}

export async function runServeBench(): Promise<{ markdown: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-bench-serve-'));
  try {
    synthesize(SHAPES.tiny, dir, { seed: 5 });
    const inner = await loadEngine(dir, { contextLength: 4096 });
    const server = createServer({ engine: new HarmonyShaped(inner), modelName: 'bench', log: () => {}, maxConcurrency: 64 });
    const running = await server.listen(0);
    const client = new OpenAI({ baseURL: `${running.url}/v1`, apiKey: 'x', maxRetries: 0 });
    try {
      await measure(client, 2, 1); // warm up (worker threads, caches)
      const runs: Run[] = [];
      for (const n of CLIENTS) runs.push(await measure(client, n, n === 1 ? 8 : 2));
      const sequential = runs[0]!;
      const rate = (r: Run): number => r.tokens / r.seconds;
      const rows = runs.map(
        (r) =>
          `| ${r.clients} | ${r.ttft.length} | ${r.tokens} | ${rate(r).toFixed(1)} | ${percentile(r.ttft, 50).toFixed(0)} | ${percentile(r.ttft, 95).toFixed(0)} | ${(rate(r) / rate(sequential)).toFixed(2)}× |`,
      );
      const stats = server.engine.stats;
      const markdown = [
        '## Serving (`gptoss serve`, continuous batching)',
        '',
        `Synthetic checkpoint (tiny shape: 4 layers, hidden 64, full 201088-token vocabulary, random weights), wasm engine, ` +
          `${GEN_TOKENS} tokens per request, greedy, Chat Completions streamed through the official openai client over HTTP on 127.0.0.1. ` +
          'Time to first token = request sent to the first streamed content delta. The ratio compares aggregate tokens/s with 1 client (requests served one after another).',
        '',
        '| concurrent clients | requests | tokens | aggregate tokens/s | TTFT p50 (ms) | TTFT p95 (ms) | vs sequential |',
        '|---|---|---|---|---|---|---|',
        ...rows,
        '',
        `Batching: ${stats.steps} engine steps, up to ${stats.maxSequencesPerStep} sequences in one step; ${stats.tokensReused} prompt tokens served from the prefix cache.`,
        '',
      ].join('\n');
      return { markdown };
    } finally {
      await running.close();
      await server.engine.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The name bench/run.ts looks for. */
export const runServingBench = runServeBench;

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runServeBench().then(
    (r) => process.stdout.write(r.markdown),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}

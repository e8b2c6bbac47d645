// `npm run nano:eval -- [--model DIR] [--limit N] [--split heldout|train] [--out FILE.json] ...`:
// gpt-oss-nano's held-out questions (or, with --split train, its training split's) through the
// real agent loop with the real python and browser tools, greedy, at each reasoning effort
// (src/evals/nano.ts), on a checkpoint folder (default: the embedded gpt-oss-nano). Prints the
// shares per effort and writes the JSON summary with every answer.
import { writeFileSync } from 'node:fs';
import { parseFlags } from '../src/cli/args.ts';
import { isUserError, UserError } from '../src/errors.ts';
import { ensureNano, nanoDocsDir } from '../src/checkpoint/nano.ts';
import { loadEngine } from '../src/engine/local.ts';
import { runNanoEval } from '../src/evals/nano.ts';
import { REASONING_EFFORTS, type ReasoningEffort } from '../src/harmony/index.ts';
import type { Shares } from '../src/train/nano/score.ts';

function count(v: string | undefined, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UserError('usage', `--${name} must be a whole number >= ${min}, got "${v}"`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseFlags(process.argv.slice(2), {
    model: { type: 'string' }, limit: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, heldout: { type: 'string' },
    efforts: { type: 'string' }, split: { type: 'string' }, 'max-tokens': { type: 'string' }, threads: { type: 'string' }, documents: { type: 'string' },
  }, false) as { values: Record<string, string | undefined> };
  const efforts = (values.efforts ?? REASONING_EFFORTS.join(',')).split(',').map((e) => e.trim());
  for (const e of efforts) if (!(REASONING_EFFORTS as readonly string[]).includes(e)) throw new UserError('usage', `--efforts: "${e}" is not low, medium or high`);
  const split = values.split ?? 'heldout';
  if (split !== 'heldout' && split !== 'train') throw new UserError('usage', `--split must be heldout or train, got "${split}"`);
  const limit = count(values.limit, 'limit', 1);
  const seed = count(values.seed, 'seed', 0);
  const heldout = count(values.heldout, 'heldout', 1);
  const maxTokens = count(values['max-tokens'], 'max-tokens', 1);
  const threads = count(values.threads, 'threads', 1);
  const dir = values.model ?? ensureNano().dir;
  const engine = await loadEngine(dir, { ...(threads !== undefined ? { threads } : {}), contextLength: 4096 });
  try {
    const started = performance.now();
    const summary = await runNanoEval({
      engine, documents: values.documents ?? nanoDocsDir(), efforts: efforts as ReasoningEffort[], split,
      ...(limit !== undefined ? { limit } : {}), ...(seed !== undefined ? { seed } : {}), ...(heldout !== undefined ? { heldout } : {}), ...(maxTokens !== undefined ? { maxTokens } : {}),
      onProgress: (done, total) => process.stderr.write(`\r${done}/${total} answers`),
    });
    process.stderr.write(`\n${summary.model}: ${summary.settings.questions} questions x ${efforts.length} efforts in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
    const pct = (x: number): string => `${(100 * x).toFixed(1)}%`.padStart(7);
    // One table per grouping: a header, then a row of shares per group.
    const table = (label: string, width: number, rows: [string, Shares | undefined][]): void => {
      process.stdout.write(`${label.padEnd(width)} ${'count'.padStart(6)} ${'valid'.padStart(7)} ${'tool'.padStart(7)} ${'answer'.padStart(7)}\n`);
      for (const [name, s] of rows) process.stdout.write(`${name.padEnd(width)} ${String(s!.count).padStart(6)} ${pct(s!.valid)} ${pct(s!.toolCorrect)} ${pct(s!.answerCorrect)}\n`);
    };
    table('effort', 7, [...Object.entries(summary.byEffort), ['overall', summary.overall]]);
    process.stdout.write('\n');
    table('task', 14, Object.entries(summary.byTask));
    const out = values.out ?? 'nano-eval.json';
    writeFileSync(out, JSON.stringify({ checkpoint: dir, ...summary }, null, 2) + '\n');
    process.stderr.write(`wrote ${out}\n`);
  } finally {
    await engine.close();
  }
}

try {
  await main();
} catch (e) {
  if (!isUserError(e)) throw e;
  process.stderr.write(`nano:eval: ${e.message}\n`);
  process.exit(2);
}

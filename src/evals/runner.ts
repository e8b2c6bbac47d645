// Runs the cases of an evaluation with bounded concurrency, appending each finished case to
// results.jsonl so an interrupted run resumes where it stopped (finished ids are skipped), shows
// progress on stderr, and writes summary.json and the HTML report at the end. A case that fails
// (no answer in time, a criterion the grader could not judge) is listed, not scored, and retried
// by the next run.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isUserError, UserError } from '../errors.ts';
import { renderReport } from './report.ts';
import { summarise } from './stats.ts';
import type { CaseResult, RunLabels, RunSummary } from './types.ts';

export interface EvalCase {
  id: string;
  run: (signal: AbortSignal) => Promise<CaseResult>;
}

export interface RunOptions extends RunLabels {
  outDir: string;
  concurrency: number;
  /** The metric whose clipped mean is the headline score. */
  headline: string;
  progress?: (done: number, total: number, failed: number) => void;
}

export function readResults(path: string): CaseResult[] {
  if (!existsSync(path)) return [];
  const out: CaseResult[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line) as CaseResult);
    } catch {
      // A line cut short by an interrupted run: that case runs again.
    }
  }
  return out;
}

export async function runEval(cases: readonly EvalCase[], options: RunOptions): Promise<RunSummary> {
  try {
    mkdirSync(options.outDir, { recursive: true });
  } catch (e) {
    throw new UserError('usage', `${options.outDir}: cannot create the output folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const seen = new Set<string>();
  for (const c of cases) {
    // Results are keyed by id: a repeated one would score one case twice and another not at all.
    if (seen.has(c.id)) throw new UserError('input', `case id ${JSON.stringify(c.id)} is used by two cases (ids must be unique)`);
    seen.add(c.id);
  }
  const resultsPath = join(options.outDir, 'results.jsonl');
  const wanted = new Set(cases.map((c) => c.id));
  const previous = readResults(resultsPath).filter((r) => wanted.has(r.id));
  const finished = new Map(previous.map((r) => [r.id, r]));
  const resumed = finished.size;
  const todo = cases.filter((c) => !finished.has(c.id));
  const started = performance.now();
  const failed: { id: string; error: string }[] = [];
  const controller = new AbortController();
  let next = 0;
  let done = finished.size;
  options.progress?.(done, cases.length, 0);

  const worker = async () => {
    while (next < todo.length) {
      const c = todo[next++]!;
      try {
        const result = await c.run(controller.signal);
        appendFileSync(resultsPath, JSON.stringify(result) + '\n');
        finished.set(c.id, result);
      } catch (e) {
        if (!isUserError(e)) throw e;
        failed.push({ id: c.id, error: e.message });
      }
      done++;
      options.progress?.(done, cases.length, failed.length);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, todo.length)) }, worker));
  } finally {
    controller.abort();
  }

  const results = cases.map((c) => finished.get(c.id)).filter((r): r is CaseResult => r !== undefined);
  const metrics = summarise(results.map((r) => r.metrics));
  const usage = results.reduce(
    (u, r) => ({ inputTokens: u.inputTokens + (r.response.usage?.inputTokens ?? 0), outputTokens: u.outputTokens + (r.response.usage?.outputTokens ?? 0) }),
    { inputTokens: 0, outputTokens: 0 },
  );
  const summary: RunSummary = {
    name: options.name,
    metrics,
    headline: metrics[options.headline] ?? { mean: 0, n: 0, bootstrapStd: 0 },
    cases: results.length,
    failed,
    seconds: (performance.now() - started) / 1000,
    usage,
    resumed,
    truncated: results.filter((r) => r.response.finishReason === 'length').length,
  };
  const record = { ...summary, complete: failed.length === 0, settings: options.settings, model: options.modelLabel, grader: options.graderLabel };
  writeFileSync(join(options.outDir, 'summary.json'), JSON.stringify(record, null, 2) + '\n');
  writeFileSync(join(options.outDir, 'report.html'), renderReport(summary, results, options));
  return summary;
}

/** A progress line on stderr: a redrawn bar on a terminal, a line per tenth otherwise. */
export function progressPrinter(label: string): (done: number, total: number, failed: number) => void {
  const tty = process.stderr.isTTY === true;
  let lastDecile = -1;
  return (done, total, failed) => {
    const frac = total === 0 ? 1 : done / total;
    if (tty) {
      const width = 30;
      const filled = Math.round(frac * width);
      process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${failed > 0 ? ` (${failed} failed)` : ''}`);
      if (done === total) process.stderr.write('\n');
    } else {
      const decile = Math.floor(frac * 10);
      if (decile !== lastDecile) {
        lastDecile = decile;
        process.stderr.write(`${label}: ${done}/${total}${failed > 0 ? ` (${failed} failed)` : ''}\n`);
      }
    }
  };
}

// Evaluations for library callers: run a HealthBench, multiple-choice or exact-answer file against a
// loaded Model (served in-process on loopback, as `gptoss eval` serves a local model) or an
// OpenAI-compatible endpoint, with the same resumable runner, results.jsonl, summary and HTML
// report as the CLI.
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readProblem, UserError } from '../errors.ts';
import { buildCases } from '../evals/cases.ts';
import { HttpSampler, openSampler, runEval as runCases, type SampleOptions, type Sampler } from '../evals/index.ts';
import type { ReasoningEffort } from '../harmony/index.ts';
import { translateErrors } from './errors.ts';
import type { Model } from './model.ts';
import { startServer } from './server.ts';

/** What to evaluate, on what, and where the results go. */
export interface EvalOptions {
  /** `healthbench` (rubric-graded, needs a grader), `mcq` (multiple choice) or `exact` (an integer answer). */
  kind: 'healthbench' | 'mcq' | 'exact';
  /** The cases: a JSONL file in the kind's format (see the evals guide). */
  data: string;
  /** The model under test: a loaded Model, or an OpenAI-compatible base URL (`URL#model` picks a model). */
  model: Model | string;
  /** HealthBench's grader, like `model`. */
  grader?: Model | string;
  /** Folder of results.jsonl, summary.json and report.html; a rerun with the same folder resumes. */
  outDir: string;
  /** Run only n cases (the same random n every time). */
  n?: number;
  /** Cases at once. Default 4. */
  concurrency?: number;
  /** HealthBench subset. */
  subset?: 'hard' | 'consensus';
  /** Seed of the multiple-choice option shuffle. Default 0. */
  seed?: number;
  reasoningEffort?: ReasoningEffort;
  temperature?: number;
  /** Most tokens per answer. */
  maxTokens?: number;
  /** API key of URL endpoints. */
  apiKey?: string;
  /** Called as cases finish. */
  onProgress?: (done: number, total: number, failed: number) => void;
}

/** A metric's mean over the cases with its bootstrap standard deviation. */
export interface EvalMetric {
  mean: number;
  bootstrapStd: number;
  n: number;
}

/** The outcome of an evaluation. */
export interface EvalResult {
  /** The headline score (HealthBench: overall_score; the others: accuracy). */
  score: EvalMetric;
  /** Every metric by name. */
  metrics: Record<string, EvalMetric>;
  /** Cases scored (including those an earlier run finished). */
  cases: number;
  /** Cases that failed, with the reason. */
  failed: { id: string; error: string }[];
  usage: { inputTokens: number; outputTokens: number };
  /** The HTML report. */
  reportPath: string;
}

/** Runs an evaluation and writes its results and report to `outDir`. */
export async function runEval(options: EvalOptions): Promise<EvalResult> {
  return translateErrors(async () => {
    const { kind } = options;
    if (kind !== 'healthbench' && kind !== 'mcq' && kind !== 'exact') throw new UserError('usage', `kind must be healthbench, mcq or exact, got ${JSON.stringify(kind)}`);
    if (kind === 'healthbench' && options.grader === undefined) throw new UserError('usage', 'a healthbench evaluation needs a grader');
    const dataPath = resolve(options.data);
    let text: string;
    try {
      if (statSync(dataPath).isDirectory()) throw new UserError('input', `${dataPath}: is a folder, not a JSONL file`);
      text = readFileSync(dataPath, 'utf8');
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError('input', `${dataPath}: ${readProblem(e)}`);
    }
    const outDir = resolve(options.outDir);
    const sample: SampleOptions = {
      ...(options.reasoningEffort !== undefined ? { effort: options.reasoningEffort } : {}),
      ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
      ...(options.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
    };
    const opened: Sampler[] = [];
    const open = async (target: Model | string): Promise<Sampler> => {
      let sampler: Sampler;
      if (typeof target === 'string') {
        if (!/^https?:\/\//i.test(target)) throw new UserError('usage', `model "${target}" is not an http(s) URL; pass a Model from loadModel() for a local model`);
        sampler = await openSampler(target, options.apiKey !== undefined ? { apiKey: options.apiKey } : {});
      } else {
        const server = await startServer(target);
        const http = new HttpSampler({ baseUrl: server.baseUrl });
        sampler = { label: `${target.name} (in-process)`, complete: (messages, opts) => http.complete(messages, opts), close: () => server.close() };
      }
      opened.push(sampler);
      return sampler;
    };
    try {
      const model = await open(options.model);
      const grader = kind === 'healthbench' ? await open(options.grader!) : undefined;
      const { cases, headline, settings } = buildCases({
        kind, text, source: dataPath, model, sample, seed: options.seed ?? 0,
        ...(grader !== undefined ? { grader } : {}),
        ...(options.n !== undefined ? { n: options.n } : {}),
        ...(options.subset !== undefined ? { subset: options.subset } : {}),
      });
      if (cases.length === 0) throw new UserError('input', `${dataPath}: no cases to run`);
      const summary = await runCases(cases, {
        name: `${kind} — ${dataPath.split('/').at(-1)}`,
        outDir,
        concurrency: options.concurrency ?? 4,
        modelLabel: model.label,
        ...(grader !== undefined ? { graderLabel: grader.label } : {}),
        settings,
        headline,
        ...(options.onProgress !== undefined ? { progress: options.onProgress } : {}),
      });
      return { score: summary.headline, metrics: summary.metrics, cases: summary.cases, failed: summary.failed, usage: summary.usage, reportPath: join(outDir, 'report.html') };
    } finally {
      for (const s of opened) await s.close?.();
    }
  });
}

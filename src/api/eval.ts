// Evaluations for library callers: run a HealthBench, multiple-choice, exact-answer or gold-label
// classification file against a loaded Model (served in-process on loopback, as `gptoss eval`
// serves a local model) or an OpenAI-compatible endpoint, with the same resumable runner,
// results.jsonl, summary and HTML report as the CLI.
import { join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { readRegularFile } from '../files.ts';
import { planCases } from '../evals/cases.ts';
import { parseExactPromptStyle, readResults, runEval as runCases, type SampleOptions, type Sampler } from '../evals/index.ts';
import { refuseOtherPolicy, writeClassificationMetrics } from '../evals/classify-eval.ts';
import type { ReasoningEffort } from '../harmony/index.ts';
import type { OutputFormat } from '../evals/classify.ts';
import { outputFormat } from './classify.ts';
import { translateErrors } from './errors.ts';
import type { Model } from './model.ts';
import { openTarget } from './sampler.ts';
import type { ClassificationMetrics } from '../evals/classify-eval.ts';

/** What to evaluate, on what, and where the results go. */
export interface EvalOptions {
  /**
   * `healthbench` (rubric-graded, needs a grader), `mcq` (multiple choice), `exact` (an integer
   * answer) or `classify` (texts with gold labels, classified against `policy`).
   */
  kind: 'healthbench' | 'mcq' | 'exact' | 'classify';
  /** The cases: a JSONL file in the kind's format (see the evals guide; classify: `{id?, text, label}` rows). */
  data: string;
  /** classify: the policy text (required there). */
  policy?: string;
  /** classify: the labels the policy allows (a gold label outside them is refused). */
  labels?: readonly string[];
  /** classify: the field of a JSON answer that holds the label. */
  labelField?: string;
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
  /** exact: `boxed` (default) asks to reason and box the answer; `plain` sends the question alone. */
  exactPrompt?: 'boxed' | 'plain';
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

// One definition of the classification figures: the evaluation computes them, the library returns them.
export type { ClassificationMetrics, LabelMetrics } from '../evals/classify-eval.ts';

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
  /** classify: accuracy, per-label precision, recall and F1, and the confusion table (also in summary.json). */
  classification?: ClassificationMetrics;
}

/** Runs an evaluation and writes its results and report to `outDir`. */
export async function runEval(options: EvalOptions): Promise<EvalResult> {
  return translateErrors(async () => {
    const { kind } = options;
    if (kind !== 'healthbench' && kind !== 'mcq' && kind !== 'exact' && kind !== 'classify') throw new UserError('usage', `kind must be healthbench, mcq, exact or classify, got ${JSON.stringify(kind)}`);
    if (kind === 'healthbench' && options.grader === undefined) throw new UserError('usage', 'a healthbench evaluation needs a grader');
    const classify = kind === 'classify' ? classifySpec(options) : undefined;
    const dataPath = resolve(options.data);
    const text = readRegularFile(dataPath, 'input');
    const outDir = resolve(options.outDir);
    const sample: SampleOptions = {
      ...(options.reasoningEffort !== undefined ? { effort: options.reasoningEffort } : {}),
      ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
      ...(options.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
    };
    // The data is parsed and checked before the model is opened (a local one loads for minutes).
    const plan = planCases({
      kind, text, source: dataPath, sample, seed: options.seed ?? 0,
      ...(options.n !== undefined ? { n: options.n } : {}),
      ...(options.subset !== undefined ? { subset: options.subset } : {}),
      ...(classify !== undefined ? { classify } : {}),
      ...(options.exactPrompt !== undefined ? { exactPrompt: parseExactPromptStyle(options.exactPrompt, 'exactPrompt') } : {}),
    });
    const { headline, settings } = plan;
    if (classify !== undefined) refuseOtherPolicy(outDir, String(settings['policy_sha256']), `outDir ${outDir}`);
    if (plan.count === 0) throw new UserError('input', `${dataPath}: no cases to run`);
    const opened: Sampler[] = [];
    const open = async (target: Model | string, what: string): Promise<Sampler> => {
      const sampler = await openTarget(target, options.apiKey !== undefined ? { apiKey: options.apiKey } : {}, what);
      opened.push(sampler);
      return sampler;
    };
    try {
      const model = await open(options.model, 'model');
      const grader = kind === 'healthbench' ? await open(options.grader!, 'grader') : undefined;
      const cases = plan.bind(model, grader);
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
      const result: EvalResult = { score: summary.headline, metrics: summary.metrics, cases: summary.cases, failed: summary.failed, usage: summary.usage, reportPath: join(outDir, 'report.html') };
      if (classify !== undefined) {
        const wanted = new Set(cases.map((c) => c.id));
        result.classification = writeClassificationMetrics(outDir, readResults(join(outDir, 'results.jsonl')).filter((r) => wanted.has(r.id)));
      }
      return result;
    } finally {
      for (const s of opened) await s.close?.();
    }
  });
}

/** A classify evaluation's policy and output format, checked. */
function classifySpec(options: EvalOptions): { policy: string; format: OutputFormat } {
  const { policy, labels, labelField } = options;
  if (typeof policy !== 'string' || policy.trim() === '') throw new UserError('usage', 'a classify evaluation needs policy (the policy text, not empty)');
  return { policy, format: outputFormat(labels, labelField) };
}

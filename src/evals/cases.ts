// The cases of one evaluation run, from its data file's text: parse the kind's format, take the
// HealthBench subset and the same random n cases every time (before any model is opened), then
// bind each case to the samplers.
// Shared by `gptoss eval` and the library's runEval, so both run the same cases the same way.
import { policySha256, type OutputFormat } from './classify.ts';
import { parseGold, runClassifyCase } from './classify-eval.ts';
import { parseExact, runExactCase, type ExactPromptStyle } from './exact.ts';
import { parseHealthBench, runHealthBenchCase, selectSubset } from './healthbench.ts';
import { parseMcq, runMcqCase } from './mcq.ts';
import type { EvalCase } from './runner.ts';
import { seededPermutation } from './stats.ts';
import type { SampleOptions, Sampler } from './types.ts';

export type EvalKind = 'healthbench' | 'mcq' | 'exact' | 'classify';

export interface CaseSetup {
  kind: EvalKind;
  /** The data file's text and its path (for error messages). */
  text: string;
  source: string;
  sample: SampleOptions;
  /** Run only n cases. */
  n?: number;
  subset?: 'hard' | 'consensus';
  /** Seed of the multiple-choice option shuffle. */
  seed: number;
  /** How an exact evaluation puts its questions (default `boxed`). */
  exactPrompt?: ExactPromptStyle;
  /** A classify evaluation's policy text and the output format it prescribes (required there). */
  classify?: { policy: string; format: OutputFormat };
}

/** An evaluation's cases, parsed and checked, not yet bound to the models that answer them. */
export interface EvalPlan {
  /** The number of cases. */
  count: number;
  /** The metric whose mean is the headline score. */
  headline: string;
  /** The run's settings as the report shows them (data file, effort, subset, seed). */
  settings: Record<string, string | number>;
  /** The cases, answered by `model` (and graded by `grader`, which HealthBench requires). */
  bind(model: Sampler, grader?: Sampler): EvalCase[];
}

/** Picks n items at random with a fixed seed (the same subset every run), keeping file order. */
export function pickN<T>(items: T[], n: number | undefined): T[] {
  if (n === undefined || n >= items.length) return items;
  const keep = new Set(seededPermutation(items.length, 0).slice(0, n));
  return items.filter((_, i) => keep.has(i));
}

/**
 * Parses and checks the data file's cases. Nothing is opened: a bad file fails before a model is
 * loaded or a server is asked anything.
 */
export function planCases(setup: CaseSetup): EvalPlan {
  const { sample } = setup;
  const settings: Record<string, string | number> = { data: setup.source };
  if (sample.effort !== undefined) settings['effort'] = sample.effort;
  if (setup.kind === 'healthbench') {
    if (setup.subset !== undefined) settings['subset'] = setup.subset;
    const all = pickN(selectSubset(parseHealthBench(setup.text, setup.source), setup.subset), setup.n);
    return {
      count: all.length, headline: 'overall_score', settings,
      bind: (model, grader) => {
        if (grader === undefined) throw new Error('planCases: healthbench needs a grader');
        return all.map((c) => ({ id: c.promptId, run: (signal) => runHealthBenchCase(model, grader, c, { ...sample, signal }, { signal }) }));
      },
    };
  }
  if (setup.kind === 'classify') {
    const spec = setup.classify;
    if (spec === undefined) throw new Error('planCases: classify needs a policy');
    // Results are resumed by case id: the hash makes a changed policy visible in summary.json.
    settings['policy_sha256'] = policySha256(spec.policy).slice(0, 16);
    if (spec.format.labels !== undefined) settings['labels'] = spec.format.labels.join(',');
    const all = pickN(parseGold(setup.text, setup.source, spec.format.labels), setup.n);
    return { count: all.length, headline: 'accuracy', settings, bind: (model) => all.map((c) => ({ id: c.id, run: (signal) => runClassifyCase(model, spec.policy, c, spec.format, { ...sample, signal }) })) };
  }
  if (setup.kind === 'mcq') {
    settings['seed'] = setup.seed;
    const all = pickN(parseMcq(setup.text, setup.source), setup.n);
    return { count: all.length, headline: 'accuracy', settings, bind: (model) => all.map((c) => ({ id: c.id, run: (signal) => runMcqCase(model, c, setup.seed, { ...sample, signal }) })) };
  }
  const style = setup.exactPrompt ?? 'boxed';
  settings['prompt'] = style;
  const all = pickN(parseExact(setup.text, setup.source), setup.n);
  return { count: all.length, headline: 'accuracy', settings, bind: (model) => all.map((c) => ({ id: c.id, run: (signal) => runExactCase(model, c, { ...sample, signal }, style) })) };
}

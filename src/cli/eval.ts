// `gptoss eval healthbench|mcq|exact|classify`: runs an evaluation against any OpenAI-compatible endpoint
// (or a local model), resumable, with a progress bar, a summary and an HTML report. The last line
// printed is the headline score, e.g. `score: 0.412 ± 0.031 (n=250)`; the exit status says whether
// every case was answered and graded (0) or some were not (1, listed on stderr).
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { readRegularFile } from '../files.ts';
import { boolFlag, numberFlag, parseEffort, parseFlags, stringFlag } from './args.ts';
import {
  DEFAULT_MAX_TOKENS, DEFAULT_TIMEOUT_S, openSampler, parseExactPromptStyle, progressPrinter, readResults, runEval, type Sampler, type SampleOptions, type RunSummary,
} from '../evals/index.ts';
import { planCases } from '../evals/cases.ts';
import { parseLabelList, type OutputFormat } from '../evals/classify.ts';
import { refuseOtherPolicy, writeClassificationMetrics } from '../evals/classify-eval.ts';

const USAGE = `usage:
  gptoss eval healthbench --data FILE.jsonl [--model URL|DIR] --grader URL|DIR --out DIR
                          [--subset hard|consensus] [--effort low|medium|high] [--n N] [--concurrency C]
  gptoss eval mcq   --data FILE.jsonl [--model URL|DIR] --out DIR [--seed S] [--effort E] [--n N] [--concurrency C]
  gptoss eval exact --data FILE.jsonl [--model URL|DIR] --out DIR [--prompt boxed|plain] [--effort E] [--n N] [--concurrency C]
                    (--prompt plain: the question alone, without the instruction to box the answer)
  gptoss eval classify --policy POLICY.md --data GOLD.jsonl [--model URL|DIR] --out DIR
                       [--labels A,B,...] [--label-field NAME] [--effort E] [--n N] [--concurrency C]
                       (GOLD rows: {"id"?, "text", "label"}; accuracy, per-label precision/recall, confusion table)
every evaluation also takes [--max-tokens N] (default ${DEFAULT_MAX_TOKENS}) [--timeout SECONDS] (default ${DEFAULT_TIMEOUT_S})
and [--temperature T]; the token cap and the timeout apply to every request, the grader's too.

URL is an OpenAI-compatible base URL such as http://127.0.0.1:8000/v1 (append #MODEL to pick a model);
DIR a checkpoint folder or hub repository id, served in-process. Without --model the model is the one
chat and serve run: $GPTOSS_MODEL, else openai/gpt-oss-20b from the hub cache, else the embedded
gpt-oss-nano.
The API key comes from GPTOSS_API_KEY or OPENAI_API_KEY. Rerunning with the same --out resumes.
Exit status: 0 when every case was answered and graded, 1 when some were not (rerun to retry them),
2 for bad input.`;

const FLAGS = {
  data: { type: 'string' }, model: { type: 'string' }, grader: { type: 'string' }, out: { type: 'string' },
  subset: { type: 'string' }, effort: { type: 'string' }, n: { type: 'string' }, concurrency: { type: 'string' },
  seed: { type: 'string' }, prompt: { type: 'string' }, policy: { type: 'string' }, labels: { type: 'string' }, 'label-field': { type: 'string' }, temperature: { type: 'string' }, 'max-tokens': { type: 'string' }, timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' },
} as const;

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UserError('usage', `--${flag} is required (see gptoss eval --help)`);
  return value;
}

export async function run(argv: string[]): Promise<number> {
  const [kind, ...rest] = argv;
  if (kind === undefined || kind === '--help' || kind === '-h') {
    console.log(USAGE);
    return kind === undefined ? 2 : 0;
  }
  if (kind !== 'healthbench' && kind !== 'mcq' && kind !== 'exact' && kind !== 'classify') throw new UserError('usage', `unknown evaluation "${kind}" (expected healthbench, mcq, exact or classify)`);
  const p = parseFlags(rest, FLAGS, false);
  if (boolFlag(p, 'help')) {
    console.log(USAGE);
    return 0;
  }
  const dataPath = resolve(required(stringFlag(p, 'data'), 'data'));
  const outDir = resolve(required(stringFlag(p, 'out'), 'out'));
  if (existsSync(outDir) && !statSync(outDir).isDirectory()) throw new UserError('usage', `--out ${outDir}: is a file, not a folder`);
  // Absent: the default local model, as chat and serve choose it. Empty: a usage error (resolve.ts).
  const modelSpec = stringFlag(p, 'model');
  const graderSpec = kind === 'healthbench' ? required(stringFlag(p, 'grader'), 'grader') : undefined;
  const effortFlag = stringFlag(p, 'effort');
  const effort = effortFlag === undefined ? undefined : parseEffort(effortFlag, '--effort');
  const subset = stringFlag(p, 'subset');
  if (subset !== undefined && subset !== 'hard' && subset !== 'consensus') throw new UserError('usage', `--subset must be hard or consensus, got "${subset}"`);
  const promptFlag = stringFlag(p, 'prompt');
  if (promptFlag !== undefined && kind !== 'exact') throw new UserError('usage', `--prompt applies to gptoss eval exact only`);
  const exactPrompt = promptFlag === undefined ? undefined : parseExactPromptStyle(promptFlag, '--prompt');
  const n = numberFlag(p, 'n', { min: 1, integer: true });
  const concurrency = numberFlag(p, 'concurrency', { min: 1, max: 1024, integer: true }) ?? 4;
  const seed = numberFlag(p, 'seed', { min: 0, integer: true }) ?? 0;
  const temperature = numberFlag(p, 'temperature', { min: 0, max: 2 });
  const maxTokens = numberFlag(p, 'max-tokens', { min: 1, integer: true }) ?? DEFAULT_MAX_TOKENS;
  const timeoutS = numberFlag(p, 'timeout', { min: 0.001, max: 86_400 }) ?? DEFAULT_TIMEOUT_S;
  const sample: SampleOptions = {
    ...(effort !== undefined ? { effort } : {}),
    ...(temperature !== undefined ? { temperature } : {}),
  };

  // The data (and a classify run's policy) are read and checked before any model is loaded: a
  // bad file fails in a moment, not after minutes of loading.
  const text = readRegularFile(dataPath, 'input');
  let classifySpec: { policy: string; format: OutputFormat } | undefined;
  let policyPath: string | undefined;
  if (kind === 'classify') {
    policyPath = resolve(required(stringFlag(p, 'policy'), 'policy'));
    let policy: string;
    try {
      policy = readRegularFile(policyPath, 'input');
    } catch (e) {
      throw new UserError('input', `--policy ${(e as Error).message}`);
    }
    if (policy.trim() === '') throw new UserError('input', `--policy ${policyPath}: the policy is empty`);
    const labelsFlag = stringFlag(p, 'labels');
    const labelField = stringFlag(p, 'label-field');
    classifySpec = {
      policy,
      format: {
        ...(labelsFlag !== undefined ? { labels: parseLabelList(labelsFlag) } : {}),
        ...(labelField !== undefined && labelField !== '' ? { labelField } : {}),
      },
    };
  }
  const plan = planCases({
    kind, text, source: dataPath, sample, seed,
    ...(n !== undefined ? { n } : {}),
    ...(subset !== undefined ? { subset: subset as 'hard' | 'consensus' } : {}),
    ...(classifySpec !== undefined ? { classify: classifySpec } : {}),
    ...(exactPrompt !== undefined ? { exactPrompt } : {}),
  });
  const { headline, settings } = plan;
  if (policyPath !== undefined) {
    settings.policy = policyPath;
    refuseOtherPolicy(outDir, String(settings.policy_sha256), `--out ${outDir}`);
  }
  settings.max_tokens = maxTokens;
  settings.timeout_s = timeoutS;
  if (temperature !== undefined) settings.temperature = temperature;
  if (plan.count === 0) throw new UserError('input', `${dataPath}: no cases to run${subset !== undefined ? ` in subset "${subset}"` : ''}`);

  const apiKey = process.env.GPTOSS_API_KEY ?? process.env.OPENAI_API_KEY;
  const samplers: Sampler[] = [];
  const open = async (spec: string | undefined) => {
    const s = await openSampler(spec, { maxTokens, timeoutMs: timeoutS * 1000, ...(apiKey !== undefined ? { apiKey } : {}) });
    samplers.push(s);
    return s;
  };

  try {
    const model = await open(modelSpec);
    // The user named no model: say which one answers (the report names it too).
    if (modelSpec === undefined) console.error(`model: ${model.label}`);
    const grader = graderSpec !== undefined ? await open(graderSpec) : undefined;
    const cases = plan.bind(model, grader);

    const summary: RunSummary = await runEval(cases, {
      name: `${kind} — ${dataPath.split('/').at(-1)}`,
      outDir, concurrency, modelLabel: model.label, ...(grader !== undefined ? { graderLabel: grader.label } : {}), settings, headline,
      progress: progressPrinter(kind),
    });
    if (kind === 'classify') {
      const wanted = new Set(cases.map((c) => c.id));
      const metrics = writeClassificationMetrics(outDir, readResults(join(outDir, 'results.jsonl')).filter((r) => wanted.has(r.id)));
      for (const l of metrics.labels) {
        console.error(`label ${l.label}: precision ${l.precision === null ? '-' : l.precision.toFixed(3)}, recall ${l.recall === null ? '-' : l.recall.toFixed(3)} (${l.support} gold, ${l.predicted} predicted)`);
      }
      if (metrics.invalid > 0) console.error(`${metrics.invalid} answer(s) did not follow the policy's output format (counted as wrong)`);
    }
    const h = summary.headline;
    console.error(`${summary.cases} cases (${summary.resumed} from an earlier run) in ${summary.seconds.toFixed(1)} s; ` +
      `${summary.usage.inputTokens} input and ${summary.usage.outputTokens} output tokens; report: ${join(outDir, 'report.html')}`);
    if (summary.truncated > 0) console.error(`${summary.truncated} answer(s) cut off at --max-tokens ${maxTokens}`);
    for (const f of summary.failed) console.error(`failed: case ${f.id}: ${f.error}`);
    if (summary.failed.length > 0) console.error(`${summary.failed.length} of ${cases.length} cases were not answered and graded, so they are not in the score; rerun with the same --out to retry them`);
    console.log(`score: ${h.mean.toFixed(3)} ± ${h.bootstrapStd.toFixed(3)} (n=${h.n})`);
    return summary.failed.length > 0 ? 1 : 0;
  } finally {
    for (const s of samplers) await s.close?.();
  }
}

// `gptoss classify`: labels every text of a JSONL file against a written policy (the
// gpt-oss-safeguard workflow), on a local model or any OpenAI-compatible endpoint. Results (label,
// any JSON fields the policy asks for, the model's reasoning) go to --out, one JSON object per
// line, and a rerun with the same file skips the texts already done; progress, failures (naming
// the input line), throughput and the label counts go to stderr.
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { readRegularFile } from '../files.ts';
import { boolFlag, numberFlag, parseEffort, parseFlags, readStdin, stringFlag } from './args.ts';
import { DEFAULT_MAX_TOKENS, DEFAULT_TIMEOUT_S, openSampler, progressPrinter } from '../evals/index.ts';
import { classify, parseClassifyInput, parseLabelList, type ClassifyResult, type OutputFormat } from '../evals/classify.ts';

const USAGE = `usage: gptoss classify --policy POLICY.md --input FILE.jsonl|- (--model DIR|REPO | --endpoint URL [--model NAME])
                       [--out results.jsonl] [--labels A,B,...] [--label-field NAME] [--text-field NAME]
                       [--effort low|medium|high] [--concurrency C] [--max-tokens N] [--timeout SECONDS] [--temperature T]

Each input line is a JSON object {"id"?: ..., "text": "..."}; the policy is sent as the system
message and the text as the user message. The label is the model's final answer (one line), or
the label field of a JSON answer ("violation", "label", "classification", "category" or
"decision", or --label-field). --labels lists the labels the policy allows; any other answer is
reported as not following the policy's output format.

Results go to --out (else stdout), one JSON object per line with the label, the JSON fields, the
answer and the reasoning; rerunning with the same --out skips the texts already classified.
The API key for --endpoint comes from GPTOSS_API_KEY or OPENAI_API_KEY.
Exit status: 0 when every text was classified, 1 when some were not (listed on stderr; rerun to
retry them), 2 for bad input.`;

const FLAGS = {
  policy: { type: 'string' }, input: { type: 'string' }, model: { type: 'string' }, endpoint: { type: 'string' },
  out: { type: 'string' }, labels: { type: 'string' }, 'label-field': { type: 'string' }, 'text-field': { type: 'string' },
  effort: { type: 'string' }, concurrency: { type: 'string' }, 'max-tokens': { type: 'string' }, timeout: { type: 'string' },
  temperature: { type: 'string' }, help: { type: 'boolean', short: 'h' },
} as const;

function readText(path: string, what: string): string {
  try {
    return readRegularFile(path, 'input');
  } catch (e) {
    // The file's own message ("PATH: why"), under the flag that named it.
    throw new UserError('input', `${what} ${(e as Error).message}`);
  }
}

/** The sampler spec: an endpoint URL (with --model as the model name) or a local model. */
function modelSpec(endpoint: string | undefined, model: string | undefined): string {
  if (endpoint !== undefined) {
    if (!/^https?:\/\//i.test(endpoint)) throw new UserError('usage', `--endpoint expects an http(s) URL such as http://127.0.0.1:8000/v1, got "${endpoint}"`);
    if (model === undefined) return endpoint;
    if (endpoint.includes('#')) throw new UserError('usage', '--endpoint URL#MODEL and --model both name the model; give one');
    return `${endpoint}#${model}`;
  }
  if (model === undefined || model === '') throw new UserError('usage', '--model DIR|REPO or --endpoint URL is required (see gptoss classify --help)');
  return model;
}

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, FLAGS, false);
  if (boolFlag(p, 'help')) {
    console.log(USAGE);
    return 0;
  }
  const policyPath = stringFlag(p, 'policy');
  if (policyPath === undefined || policyPath === '') throw new UserError('usage', '--policy POLICY.md is required (see gptoss classify --help)');
  const inputPath = stringFlag(p, 'input');
  if (inputPath === undefined || inputPath === '') throw new UserError('usage', '--input FILE.jsonl (or - for stdin) is required');
  const spec = modelSpec(stringFlag(p, 'endpoint'), stringFlag(p, 'model'));
  const outPath = stringFlag(p, 'out') !== undefined ? resolve(stringFlag(p, 'out')!) : undefined;
  if (outPath !== undefined && existsSync(outPath) && statSync(outPath).isDirectory()) throw new UserError('usage', `--out ${outPath}: is a folder; name the results file (e.g. results.jsonl)`);
  const effortFlag = stringFlag(p, 'effort');
  const effort = effortFlag === undefined ? undefined : parseEffort(effortFlag, '--effort');
  const labelsFlag = stringFlag(p, 'labels');
  const labelField = stringFlag(p, 'label-field');
  const format: OutputFormat = {
    ...(labelsFlag !== undefined ? { labels: parseLabelList(labelsFlag) } : {}),
    ...(labelField !== undefined && labelField !== '' ? { labelField } : {}),
  };
  const concurrency = numberFlag(p, 'concurrency', { min: 1, max: 1024, integer: true }) ?? 4;
  const maxTokens = numberFlag(p, 'max-tokens', { min: 1, integer: true }) ?? DEFAULT_MAX_TOKENS;
  const timeoutS = numberFlag(p, 'timeout', { min: 0.001, max: 86_400 }) ?? DEFAULT_TIMEOUT_S;
  const temperature = numberFlag(p, 'temperature', { min: 0, max: 2 });

  const policy = readText(resolve(policyPath), '--policy');
  if (policy.trim() === '') throw new UserError('input', `--policy ${policyPath}: the policy is empty`);
  const source = inputPath === '-' ? 'stdin' : inputPath;
  const content = inputPath === '-' ? await readStdin() : readText(resolve(inputPath), '--input');
  const items = parseClassifyInput(content, source, stringFlag(p, 'text-field') ?? 'text');
  if (items.length === 0) throw new UserError('input', `${source}: no texts to classify`);

  const apiKey = process.env.GPTOSS_API_KEY ?? process.env.OPENAI_API_KEY;
  const sampler = await openSampler(spec, { maxTokens, timeoutMs: timeoutS * 1000, ...(apiKey !== undefined ? { apiKey } : {}) });
  try {
    const run = await classify(items, {
      sampler, policy, format, concurrency, maxTokens, source,
      ...(effort !== undefined ? { effort } : {}),
      ...(temperature !== undefined ? { temperature } : {}),
      ...(outPath !== undefined ? { resultsPath: outPath } : {}),
      progress: progressPrinter('classify'),
      ...(outPath === undefined ? { onResult: (r: ClassifyResult) => void process.stdout.write(JSON.stringify(r) + '\n') } : {}),
    });
    if (run.resumed > 0) console.error(`${run.resumed} text(s) already classified in ${outPath}; skipped`);
    for (const f of run.failed) console.error(`failed: ${f.error}`);
    const rate = run.seconds > 0 ? run.classified / run.seconds : 0;
    const tokenRate = run.seconds > 0 ? run.usage.outputTokens / run.seconds : 0;
    console.error(`classified ${run.classified} text(s) in ${run.seconds.toFixed(1)} s (${rate.toFixed(2)} texts/s, ` +
      `${run.usage.inputTokens} input and ${run.usage.outputTokens} output tokens, ${tokenRate.toFixed(1)} output tokens/s) with ${sampler.label}`);
    const truncated = run.results.filter((r) => r.finishReason === 'length').length;
    if (truncated > 0) console.error(`${truncated} answer(s) reached --max-tokens ${maxTokens}`);
    console.error(`labels (${run.results.length} of ${items.length} texts): ${run.labelCounts.map(([label, n]) => `${label}: ${n}`).join(', ') || 'none'}`);
    if (run.failed.length > 0) console.error(`${run.failed.length} of ${items.length} texts were not classified; rerun${outPath !== undefined ? ' with the same --out' : ''} to retry them`);
    return run.failed.length > 0 ? 1 : 0;
  } finally {
    await sampler.close?.();
  }
}

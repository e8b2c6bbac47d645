// Policy-based classification for library callers (the gpt-oss-safeguard workflow): label texts
// against a written policy on a loaded Model (served in-process) or an OpenAI-compatible endpoint,
// with the same prompt, label parsing and resumable results file as `gptoss classify`.
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { classify as classifyItems, type ClassifyItem, type ClassifyResult as ItemResult, type OutputFormat } from '../evals/classify.ts';
import { REASONING_EFFORTS, type JsonObject, type ReasoningEffort } from '../harmony/index.ts';
import { translateErrors } from './errors.ts';
import type { Model } from './model.ts';
import { openTarget } from './sampler.ts';

/** A text to classify, or a text with your id for it (default: a hash of the text). */
export type ClassifyInput = string | { id?: string; text: string };

/** The policy, the model and how the run goes. */
export interface ClassifyOptions {
  /** The model: a loaded Model, or an OpenAI-compatible base URL (`URL#model` picks a model). */
  model: Model | string;
  /** The policy text (sent as the system message); it prescribes the answer's format. */
  policy: string;
  /** The labels the policy allows; any other answer is a failure ("does not follow the output format"). */
  labels?: readonly string[];
  /** The field of a JSON answer that holds the label. Default: the first of violation, label, classification, category, decision. */
  labelField?: string;
  reasoningEffort?: ReasoningEffort;
  temperature?: number;
  /** Most tokens per answer, reasoning included. */
  maxTokens?: number;
  /** Texts in flight at once. Default 4. */
  concurrency?: number;
  /**
   * A JSONL file each result is appended to as it finishes. A rerun with the same file skips the
   * texts already classified under the same policy (another policy's results there are an error).
   */
  resultsPath?: string;
  /** API key of a URL endpoint. */
  apiKey?: string;
  /** Stops the run: the promise rejects with the signal's reason; finished results stay in resultsPath. */
  signal?: AbortSignal;
  /** Called with each text's result as it finishes. */
  onResult?: (result: Classification) => void;
  /** Called at the start and as each text finishes (resumed texts count as done). */
  onProgress?: (done: number, total: number, failed: number) => void;
}

/** One classified text. */
export interface Classification {
  id: string;
  text: string;
  label: string;
  /** The whole JSON object, when the policy asks for a JSON answer (e.g. a rationale beside the label). */
  fields?: JsonObject;
  /** The final answer as the model wrote it. */
  answer: string;
  /** The model's reasoning, kept for audit. */
  reasoning?: string;
  usage?: { inputTokens: number; outputTokens: number };
}

/** A text that was not classified; a rerun with the same resultsPath retries it. */
export interface ClassificationFailure {
  id: string;
  /** One line, e.g. `input:4 (id "m4"): the answer does not follow the policy's output format: expected one of "0", "1", got "maybe"`. */
  error: string;
  /** The model's answer, when it did not follow the policy's output format. */
  answer?: string;
}

/** The outcome of a classification run. */
export interface ClassifyResult {
  /** Every classified text in input order, those an earlier run finished included. */
  results: Classification[];
  failed: ClassificationFailure[];
  /** How many results carry each label, most frequent first. */
  labelCounts: { label: string; count: number }[];
  /** Results reused from resultsPath. */
  resumed: number;
  /** Texts classified by this run. */
  classified: number;
  seconds: number;
  /** Tokens of this run's requests. */
  usage: { inputTokens: number; outputTokens: number };
}

function publicResult(r: ItemResult): Classification {
  return {
    id: r.id, text: r.text, label: r.label,
    ...(r.fields !== undefined ? { fields: r.fields as JsonObject } : {}),
    answer: r.answer,
    ...(r.reasoning !== undefined ? { reasoning: r.reasoning } : {}),
    ...(r.usage !== undefined ? { usage: r.usage } : {}),
  };
}

function integerOption(value: number | undefined, name: string, min: number, max: number): void {
  if (value !== undefined && (!Number.isInteger(value) || value < min || value > max)) {
    throw new UserError('usage', `${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
}

/** The output format that `labels` and `labelField` name, checked (classify and the classify evaluation). */
export function outputFormat(labels: readonly string[] | undefined, labelField: string | undefined): OutputFormat {
  if (labels !== undefined) {
    if (!Array.isArray(labels) || labels.some((l) => typeof l !== 'string' || l.trim() === '')) throw new UserError('usage', 'labels must be an array of non-empty strings');
    const repeated = labels.find((l, i) => labels.indexOf(l) !== i);
    if (repeated !== undefined) throw new UserError('usage', `labels names ${JSON.stringify(repeated)} twice`);
  }
  if (labelField !== undefined && (typeof labelField !== 'string' || labelField === '')) throw new UserError('usage', 'labelField must be a non-empty string');
  return { ...(labels !== undefined && labels.length > 0 ? { labels: labels.map((l) => l.trim()) } : {}), ...(labelField !== undefined ? { labelField } : {}) };
}

/** The inputs as the classifier's items, checked. */
function items(inputs: readonly ClassifyInput[]): (string | ClassifyItem)[] {
  if (!Array.isArray(inputs)) throw new UserError('input', 'inputs must be an array of texts or {id, text} objects');
  if (inputs.length === 0) throw new UserError('input', 'no texts to classify');
  return inputs.map((input, i) => {
    if (typeof input === 'string') return input;
    if (typeof input !== 'object' || input === null || typeof input.text !== 'string') throw new UserError('input', `inputs[${i}] must be a string or an object with a string "text"`);
    if (input.id !== undefined && (typeof input.id !== 'string' || input.id === '')) throw new UserError('input', `inputs[${i}].id must be a non-empty string`);
    // Without an id the item is known by its text's hash, as a plain string is.
    return { ...(input.id !== undefined ? { id: input.id } : {}), text: input.text, line: i + 1 } as ClassifyItem;
  });
}

/**
 * Classifies each input against the policy: the policy as the system message, the text as the user
 * message, the label parsed from the final answer (a bare label or a JSON object). Answers that do
 * not follow the policy's output format, and requests that fail, are listed in `failed`, not thrown.
 * Bad options reject with a GptossError (code `usage` or `input`).
 */
export async function classify(inputs: readonly ClassifyInput[], options: ClassifyOptions): Promise<ClassifyResult> {
  return translateErrors(async () => {
    const list = items(inputs);
    if (typeof options.policy !== 'string' || options.policy.trim() === '') throw new UserError('usage', 'policy must be the policy text, and not empty');
    const format = outputFormat(options.labels, options.labelField);
    const effort = options.reasoningEffort;
    if (effort !== undefined && !REASONING_EFFORTS.includes(effort)) throw new UserError('usage', `reasoningEffort must be low, medium or high, got ${JSON.stringify(effort)}`);
    integerOption(options.concurrency, 'concurrency', 1, 1024);
    integerOption(options.maxTokens, 'maxTokens', 1, 1 << 30);
    const { temperature } = options;
    if (temperature !== undefined && !(typeof temperature === 'number' && temperature >= 0 && temperature <= 2)) throw new UserError('usage', `temperature must be a number from 0 to 2, got ${String(temperature)}`);
    const resultsPath = options.resultsPath !== undefined ? resolve(options.resultsPath) : undefined;
    if (resultsPath !== undefined && existsSync(resultsPath) && statSync(resultsPath).isDirectory()) throw new UserError('usage', `resultsPath ${resultsPath}: is a folder; name the results file (e.g. results.jsonl)`);
    options.signal?.throwIfAborted();

    const sampler = await openTarget(options.model, {
      ...(options.apiKey !== undefined ? { apiKey: options.apiKey } : {}),
      ...(options.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
    });
    try {
      const { onResult, onProgress, signal } = options;
      const run = await classifyItems(list, {
        sampler, policy: options.policy, format,
        ...(effort !== undefined ? { effort } : {}),
        ...(temperature !== undefined ? { temperature } : {}),
        ...(options.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
        ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
        ...(resultsPath !== undefined ? { resultsPath } : {}),
        ...(signal !== undefined ? { signal } : {}),
        ...(onResult !== undefined ? { onResult: (r: ItemResult) => onResult(publicResult(r)) } : {}),
        ...(onProgress !== undefined ? { progress: onProgress } : {}),
      });
      // An abort between requests ends the run quietly inside; to the caller it is an abort either way.
      signal?.throwIfAborted();
      return {
        results: run.results.map(publicResult),
        failed: run.failed.map((f) => ({ id: f.id, error: f.error, ...(f.answer !== undefined ? { answer: f.answer } : {}) })),
        labelCounts: run.labelCounts.map(([label, count]) => ({ label, count })),
        resumed: run.resumed, classified: run.classified, seconds: run.seconds, usage: run.usage,
      };
    } finally {
      await sampler.close?.();
    }
  });
}

// Policy-based classification (the gpt-oss-safeguard workflow): each text is sent with the
// developer's written policy as the system message and the text as the user message; the model
// reasons on its analysis channel and answers with the label in the format the policy prescribes
// (a bare label such as `0`/`1`, or a JSON object such as `{"violation": 1, "policy_category":
// "..."}`). This module builds that prompt, parses the label out of the final answer, and runs a
// batch with bounded concurrency, appending each result (reasoning kept for audit) to a results
// file so that a rerun skips the texts already classified under the same policy.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { isUserError, quoted, readProblem, UserError } from '../errors.ts';
import { CaseIds, jsonlRows } from './jsonl.ts';
import type { ChatMessage, SampleOptions, Sampler, SamplerResponse } from './types.ts';

/** What a well-formed answer looks like. Without `labels`, any one-line answer or JSON label is accepted. */
export interface OutputFormat {
  /** The labels the policy allows (compared as text: a JSON `1` is the label "1"). */
  labels?: readonly string[];
  /** The field of a JSON answer holding the label; default: the first of LABEL_FIELDS present. */
  labelField?: string;
}

/** Fields tried, in order, for the label of a JSON answer when no `labelField` is named. */
export const LABEL_FIELDS = ['violation', 'label', 'classification', 'category', 'decision'] as const;

/** A label parsed from a final answer, with the whole JSON object when the answer was one. */
export interface ParsedLabel {
  label: string;
  fields?: Record<string, unknown>;
}

/** One text to classify; `line` (1-based) names it in messages when it came from a file. */
export interface ClassifyItem {
  id: string;
  text: string;
  line?: number;
}

/** One classified text, as appended to the results file (one JSON object per line). */
export interface ClassifyResult {
  id: string;
  line?: number;
  text: string;
  label: string;
  /** The JSON object the model answered with, when the policy asks for JSON. */
  fields?: Record<string, unknown>;
  /** The final answer as the model wrote it. */
  answer: string;
  /** The model's reasoning (analysis channel), kept for audit when the endpoint returns it. */
  reasoning?: string;
  finishReason?: string;
  usage?: { inputTokens: number; outputTokens: number };
  /** sha256 of the policy text: results of another policy are never reused. */
  policySha256: string;
  seconds: number;
}

/** An answer that does not follow the policy's output format (the item is reported, not recorded). */
export class FormatError extends UserError {
  readonly answer: string;
  constructor(message: string, answer: string) {
    super('input', message);
    this.name = 'FormatError';
    this.answer = answer;
  }
}

export function policySha256(policy: string): string {
  return createHash('sha256').update(policy).digest('hex');
}

/** The conversation the guide prescribes: the policy as the system message, the content as the user message. */
export function policyMessages(policy: string, text: string): ChatMessage[] {
  return [{ role: 'system', content: policy }, { role: 'user', content: text }];
}

/** The label of a JSON field value, or undefined when it is not a scalar. */
function scalarLabel(value: unknown): string | undefined {
  if (typeof value === 'string') return value.trim();
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  return undefined;
}

/**
 * The label in `answer`. A JSON object (optionally in a ```json fence) gives its label field; any
 * other answer must be one non-empty line, which is the label. With `format.labels`, the label
 * must be one of them. Anything else is a FormatError saying what was expected.
 */
export function parseLabel(answer: string, format: OutputFormat = {}): ParsedLabel {
  const trimmed = answer.trim();
  if (trimmed === '') throw new FormatError('the answer is empty', answer);
  const fenced = /^```(?:json)?\s*\n([\s\S]*?)\n?```$/i.exec(trimmed);
  const body = (fenced?.[1] ?? trimmed).trim();
  let parsed: ParsedLabel;
  if (body.startsWith('{') || body.startsWith('[')) {
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (e) {
      throw new FormatError(`the answer looks like JSON but does not parse (${(e as Error).message}): ${quoted(body)}`, answer);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FormatError(`the answer is JSON but not an object: ${quoted(body)}`, answer);
    const fields = value as Record<string, unknown>;
    const field = format.labelField ?? LABEL_FIELDS.find((f) => f in fields);
    if (field === undefined || !(field in fields)) {
      throw new FormatError(`the JSON answer has no ${format.labelField !== undefined ? `"${format.labelField}"` : `label field (${LABEL_FIELDS.map((f) => `"${f}"`).join(', ')})`}: ${quoted(body)}`, answer);
    }
    const label = scalarLabel(fields[field]);
    if (label === undefined || label === '') throw new FormatError(`the JSON answer's "${field}" is not a label (a string, number or boolean): ${quoted(body)}`, answer);
    parsed = { label, fields };
  } else {
    if (body.includes('\n')) throw new FormatError(`expected the label alone, got several lines: ${quoted(body)}`, answer);
    parsed = { label: body };
  }
  if (format.labels !== undefined && format.labels.length > 0 && !format.labels.includes(parsed.label)) {
    throw new FormatError(`expected one of ${format.labels.map((l) => JSON.stringify(l)).join(', ')}, got ${quoted(parsed.label)}`, answer);
  }
  return parsed;
}

/** The label set of a `--labels` value: comma-separated, trimmed, at least one, no repeats. */
export function parseLabelList(value: string, origin = '--labels'): string[] {
  const labels = value.split(',').map((l) => l.trim());
  if (labels.some((l) => l === '')) throw new UserError('usage', `${origin} expects comma-separated labels such as "0,1", got ${quoted(value)}`);
  const repeated = labels.find((l, i) => labels.indexOf(l) !== i);
  if (repeated !== undefined) throw new UserError('usage', `${origin} names the label ${quoted(repeated)} twice`);
  return labels;
}

/**
 * The texts of a JSONL file: one object per line with a string `text` (or the field named by
 * `textField`) and an optional `id`; a row without an id is known by a hash of its text.
 */
export function parseClassifyInput(content: string, source: string, textField = 'text'): ClassifyItem[] {
  const ids = new CaseIds(source, 'id');
  const out: ClassifyItem[] = [];
  for (const { row, line, where } of jsonlRows(content, source)) {
    const text = row[textField];
    if (text === undefined) throw new UserError('input', `${where}: missing the "${textField}" field (the text to classify)`);
    if (typeof text !== 'string') throw new UserError('input', `${where}: "${textField}" must be a string`);
    out.push({ id: ids.assign(row, line, text), text, line });
  }
  return out;
}

/** Where an item came from, for messages: `FILE:LINE (id X)`. */
export function itemWhere(item: ClassifyItem, source: string | undefined): string {
  const at = item.line !== undefined ? `${source ?? 'input'}:${item.line}` : (source ?? 'input');
  return `${at} (id ${JSON.stringify(item.id)})`;
}

export interface ClassifyTextOptions extends SampleOptions {
  format?: OutputFormat;
}

/** Classifies one text: the model's response and the label parsed from it (a FormatError when the answer does not follow the format). */
export async function classifyText(sampler: Sampler, policy: string, text: string, options: ClassifyTextOptions = {}): Promise<{ response: SamplerResponse; parsed: ParsedLabel }> {
  const { format, ...sample } = options;
  const response = await sampler.complete(policyMessages(policy, text), sample);
  try {
    return { response, parsed: parseLabel(response.text, format) };
  } catch (e) {
    // A cut-off answer is a token cap, not the model ignoring the policy: say which.
    if (e instanceof FormatError && response.finishReason === 'length') {
      throw new FormatError(`${e.message} (the answer was cut off at the token cap; raise the maximum tokens)`, e.answer);
    }
    throw e;
  }
}

export interface ClassifyOptions {
  sampler: Sampler;
  policy: string;
  format?: OutputFormat;
  effort?: SampleOptions['effort'];
  temperature?: number;
  maxTokens?: number;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** A JSONL file: results are appended as they finish, and items already in it (same id, text and policy) are skipped. */
  resultsPath?: string;
  /** Names the input in failure messages (`FILE:LINE`). */
  source?: string;
  /** Called as each item finishes, with its result or its failure. */
  onResult?: (result: ClassifyResult) => void;
  onFailure?: (failure: ClassifyFailure) => void;
  /** Told the items done (resumed included), the total and the failures, at the start and as each finishes. */
  progress?: (done: number, total: number, failed: number) => void;
  signal?: AbortSignal;
}

export interface ClassifyFailure {
  id: string;
  line?: number;
  /** One line naming the input line, e.g. `messages.jsonl:4 (id "m4"): expected one of "0", "1", got "maybe"`. */
  error: string;
  /** The model's answer, when the failure is an answer that does not follow the format. */
  answer?: string;
}

export interface ClassifyRun {
  /** Every item's result in input order, including those from an earlier run. */
  results: ClassifyResult[];
  failed: ClassifyFailure[];
  /** Results reused from the results file. */
  resumed: number;
  /** Items classified by this run. */
  classified: number;
  seconds: number;
  /** Tokens of this run's requests. */
  usage: { inputTokens: number; outputTokens: number };
  /** How many results carry each label (all results, resumed included), most frequent first. */
  labelCounts: [string, number][];
}

/** The results already in `path` for these items; a result made for another policy or text is refused. */
function previousResults(path: string, items: readonly ClassifyItem[], policyHash: string): Map<string, ClassifyResult> {
  const done = new Map<string, ClassifyResult>();
  if (!existsSync(path)) return done;
  const byId = new Map(items.map((i) => [i.id, i]));
  let lines: string[];
  try {
    lines = readFileSync(path, 'utf8').split('\n');
  } catch (e) {
    throw new UserError('usage', `${path}: cannot read the earlier results: ${readProblem(e)}`);
  }
  for (let n = 0; n < lines.length; n++) {
    if (lines[n]!.trim() === '') continue;
    let r: ClassifyResult;
    try {
      r = JSON.parse(lines[n]!) as ClassifyResult;
    } catch {
      continue; // a line cut short by an interrupted run: that item runs again
    }
    const item = byId.get(r.id);
    if (item === undefined) continue;
    if (r.policySha256 !== policyHash || r.text !== item.text) {
      throw new UserError('usage', `${path}:${n + 1}: holds a result for id ${JSON.stringify(r.id)} made with ${r.policySha256 !== policyHash ? 'another policy' : 'another text'}; write the results to another file or remove it`);
    }
    done.set(r.id, r);
  }
  return done;
}

/** Texts given as plain strings are known by a hash of their content, like rows without an id. */
function asItems(inputs: readonly (string | ClassifyItem)[], source: string): ClassifyItem[] {
  const ids = new CaseIds(source, 'id');
  return inputs.map((input, i) => {
    const item: Omit<ClassifyItem, 'id'> = typeof input === 'string' ? { text: input } : input;
    const id = ids.assign(typeof input === 'string' ? {} : { id: input.id }, item.line ?? i + 1, item.text);
    return { ...item, id };
  });
}

/**
 * Classifies every input against the policy. Each result is appended to `resultsPath` as it
 * finishes; a rerun with the same file skips the items done. An answer that does not follow the
 * output format, or a request that fails, is listed in `failed` (naming its input line) and retried
 * by the next run.
 */
export async function classify(inputs: readonly (string | ClassifyItem)[], options: ClassifyOptions): Promise<ClassifyRun> {
  const source = options.source;
  const items = asItems(inputs, source ?? 'input');
  const policyHash = policySha256(options.policy);
  const finished = options.resultsPath !== undefined ? previousResults(options.resultsPath, items, policyHash) : new Map<string, ClassifyResult>();
  const resumed = finished.size;
  const todo = items.filter((i) => !finished.has(i.id));
  const failed: ClassifyFailure[] = [];
  const usage = { inputTokens: 0, outputTokens: 0 };
  const sample: ClassifyTextOptions = {
    ...(options.format !== undefined ? { format: options.format } : {}),
    ...(options.effort !== undefined ? { effort: options.effort } : {}),
    ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
    ...(options.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
  };
  const controller = new AbortController();
  const signal = options.signal !== undefined ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
  const started = performance.now();
  let next = 0;
  let done = resumed;
  options.progress?.(done, items.length, 0);

  const worker = async () => {
    while (next < todo.length && !signal.aborted) {
      const item = todo[next++]!;
      const itemStarted = performance.now();
      try {
        const { response, parsed } = await classifyText(options.sampler, options.policy, item.text, { ...sample, signal });
        if (response.usage !== undefined) {
          usage.inputTokens += response.usage.inputTokens;
          usage.outputTokens += response.usage.outputTokens;
        }
        const result: ClassifyResult = {
          id: item.id, ...(item.line !== undefined ? { line: item.line } : {}), text: item.text,
          label: parsed.label, ...(parsed.fields !== undefined ? { fields: parsed.fields } : {}),
          answer: response.text, ...(response.reasoning !== undefined ? { reasoning: response.reasoning } : {}),
          ...(response.finishReason !== undefined ? { finishReason: response.finishReason } : {}),
          ...(response.usage !== undefined ? { usage: response.usage } : {}),
          policySha256: policyHash, seconds: (performance.now() - itemStarted) / 1000,
        };
        if (options.resultsPath !== undefined) appendFileSync(options.resultsPath, JSON.stringify(result) + '\n');
        finished.set(item.id, result);
        options.onResult?.(result);
      } catch (e) {
        if (!isUserError(e)) throw e;
        const failure: ClassifyFailure = {
          id: item.id, ...(item.line !== undefined ? { line: item.line } : {}),
          error: e instanceof FormatError ? `${itemWhere(item, source)}: the answer does not follow the policy's output format: ${e.message}` : `${itemWhere(item, source)}: ${e.message}`,
          ...(e instanceof FormatError ? { answer: e.answer } : {}),
        };
        failed.push(failure);
        options.onFailure?.(failure);
      }
      options.progress?.(++done, items.length, failed.length);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 4, todo.length)) }, worker));
  } finally {
    controller.abort();
  }

  const results = items.map((i) => finished.get(i.id)).filter((r): r is ClassifyResult => r !== undefined);
  const counts = new Map<string, number>();
  for (const r of results) counts.set(r.label, (counts.get(r.label) ?? 0) + 1);
  return {
    results, failed, resumed, classified: results.length - resumed,
    seconds: (performance.now() - started) / 1000, usage,
    labelCounts: [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])),
  };
}

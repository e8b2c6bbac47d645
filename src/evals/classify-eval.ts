// Classification against gold labels (`gptoss eval classify`): each case is a text and its correct
// label; the model classifies it under the policy and the case scores 1 when the labels agree. An
// answer that does not follow the policy's output format scores 0 and is counted as "no valid
// answer". Besides accuracy, each case carries `precision:L` (when it was predicted L) and
// `recall:L` (when its gold label is L), so the means the harness reports are exactly each label's
// precision and recall; classificationMetrics gives the same figures with the confusion table.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { classifyText, FormatError, policyMessages, type OutputFormat } from './classify.ts';
import { CaseIds, jsonlRows } from './jsonl.ts';
import type { CaseResult, SampleOptions, Sampler, SamplerResponse } from './types.ts';

export interface GoldCase {
  id: string;
  text: string;
  /** The correct label, as text (a JSON `1` is "1"). */
  label: string;
}

/**
 * Parses JSONL rows `{id?, text, label}`; a label may be a string, number or boolean. With
 * `labels` (the policy's), a gold label outside them is refused: no answer could ever match it.
 */
export function parseGold(content: string, source: string, labels?: readonly string[]): GoldCase[] {
  const ids = new CaseIds(source, 'id');
  const out: GoldCase[] = [];
  for (const { row, line, where } of jsonlRows(content, source)) {
    if (row.text === undefined) throw new UserError('input', `${where}: missing the "text" field (the text to classify)`);
    if (typeof row.text !== 'string') throw new UserError('input', `${where}: "text" must be a string`);
    const raw = row.label;
    const label = typeof raw === 'string' ? raw.trim() : typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : undefined;
    if (label === undefined || label === '') throw new UserError('input', `${where}: "label" (the correct label) must be a non-empty string, a number or a boolean`);
    if (labels !== undefined && labels.length > 0 && !labels.includes(label)) {
      throw new UserError('input', `${where}: the label ${JSON.stringify(label)} is not one of --labels ${labels.join(',')}`);
    }
    out.push({ id: ids.assign(row, line, { text: row.text, label }), text: row.text, label });
  }
  return out;
}

/** What the details of a classification case hold (the report and the metrics read these). */
export interface ClassificationDetails {
  task: 'classify';
  expected: string;
  /** null when the answer did not follow the output format. */
  predicted: string | null;
  fields?: Record<string, unknown>;
  format_error?: string;
}

export async function runClassifyCase(model: Sampler, policy: string, c: GoldCase, format: OutputFormat, sample: SampleOptions): Promise<CaseResult> {
  const started = performance.now();
  const prompt = policyMessages(policy, c.text);
  let details: ClassificationDetails;
  let response: SamplerResponse;
  try {
    const out = await classifyText(model, policy, c.text, { ...sample, format });
    response = out.response;
    details = { task: 'classify', expected: c.label, predicted: out.parsed.label, ...(out.parsed.fields !== undefined ? { fields: out.parsed.fields } : {}) };
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    response = { text: e.answer };
    details = { task: 'classify', expected: c.label, predicted: null, format_error: e.message };
  }
  const score = details.predicted === c.label ? 1 : 0;
  const metrics: Record<string, number> = { accuracy: score, [`recall:${c.label}`]: score };
  if (details.predicted !== null) metrics[`precision:${details.predicted}`] = score;
  return { id: c.id, score, metrics, prompt, response, details: details as unknown as Record<string, unknown>, seconds: (performance.now() - started) / 1000 };
}

export interface LabelMetrics {
  label: string;
  /** Cases whose gold label this is. */
  support: number;
  /** Cases predicted with this label. */
  predicted: number;
  /** Correct among predicted; null when the label was never predicted. */
  precision: number | null;
  /** Correct among gold; null when no case has this gold label. */
  recall: number | null;
  f1: number | null;
}

export interface ClassificationMetrics {
  n: number;
  accuracy: number;
  /** Cases whose answer did not follow the output format. */
  invalid: number;
  labels: LabelMetrics[];
  /** confusion[gold][predicted] = count; predicted `null` is keyed NO_VALID_ANSWER. */
  confusion: Record<string, Record<string, number>>;
}

/** The confusion-table column of answers that did not follow the output format. */
export const NO_VALID_ANSWER = '(no valid answer)';

/** Accuracy, per-label precision, recall and F1, and the confusion table of (gold, predicted) pairs. */
export function classificationMetrics(pairs: readonly { expected: string; predicted: string | null }[]): ClassificationMetrics {
  const labels = [...new Set(pairs.flatMap((p) => (p.predicted !== null ? [p.expected, p.predicted] : [p.expected])))].sort((a, b) => a.localeCompare(b));
  const confusion: Record<string, Record<string, number>> = {};
  for (const p of pairs) {
    const row = (confusion[p.expected] ??= {});
    const col = p.predicted ?? NO_VALID_ANSWER;
    row[col] = (row[col] ?? 0) + 1;
  }
  const correct = pairs.filter((p) => p.predicted === p.expected).length;
  return {
    n: pairs.length,
    accuracy: pairs.length === 0 ? 0 : correct / pairs.length,
    invalid: pairs.filter((p) => p.predicted === null).length,
    labels: labels.map((label) => {
      const support = pairs.filter((p) => p.expected === label).length;
      const predicted = pairs.filter((p) => p.predicted === label).length;
      const hits = pairs.filter((p) => p.expected === label && p.predicted === label).length;
      const precision = predicted === 0 ? null : hits / predicted;
      const recall = support === 0 ? null : hits / support;
      const f1 = precision === null || recall === null ? null : precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
      return { label, support, predicted, precision, recall, f1 };
    }),
    confusion,
  };
}

/** The (gold, predicted) pairs of a run's classification cases; other cases are skipped. */
export function classificationPairs(results: readonly CaseResult[]): { expected: string; predicted: string | null }[] {
  const out: { expected: string; predicted: string | null }[] = [];
  for (const r of results) {
    const d = r.details as Partial<ClassificationDetails>;
    if (d.task === 'classify' && typeof d.expected === 'string') out.push({ expected: d.expected, predicted: typeof d.predicted === 'string' ? d.predicted : null });
  }
  return out;
}

/**
 * Refuses to resume the run in `outDir` when it was made under another policy (its summary.json's
 * policy_sha256 differs): mixing two policies in one score would mislead. `outName` names the
 * folder in the message (`--out DIR`, `outDir DIR`).
 */
export function refuseOtherPolicy(outDir: string, policyHash: string, outName: string): void {
  const earlier = join(outDir, 'summary.json');
  if (!existsSync(earlier)) return;
  let before: unknown;
  try {
    before = (JSON.parse(readFileSync(earlier, 'utf8')) as { settings?: Record<string, unknown> }).settings?.policy_sha256;
  } catch {
    // An unreadable summary is rewritten at the end of this run.
  }
  if (typeof before === 'string' && before !== policyHash) {
    throw new UserError('usage', `${outName}: holds a run made with another policy; use another folder (or remove it) to evaluate this one`);
  }
}

/**
 * Per-label precision and recall come from all cases together, not case means: computes them with
 * the confusion table from the run's results and adds them to its summary.json (the HTML report
 * computes the same table).
 */
export function writeClassificationMetrics(outDir: string, results: readonly CaseResult[]): ClassificationMetrics {
  const metrics = classificationMetrics(classificationPairs(results));
  const summaryPath = join(outDir, 'summary.json');
  const record = JSON.parse(readFileSync(summaryPath, 'utf8')) as Record<string, unknown>;
  writeFileSync(summaryPath, JSON.stringify({ ...record, classification: metrics }, null, 2) + '\n');
  return metrics;
}

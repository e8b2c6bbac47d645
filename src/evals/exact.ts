// Short-answer evaluation (AIME-style): the expected answer is an integer; the model is asked to
// box its final answer (or, in the plain style, just the question), and the last boxed value (else
// the last number) is compared as an integer.
import { UserError } from '../errors.ts';
import { withoutCitations } from '../tools/index.ts';
import { CaseIds, jsonlRows } from './jsonl.ts';
import type { CaseResult, ChatMessage, SampleOptions, Sampler } from './types.ts';

export interface ExactCase {
  id: string;
  question: string;
  answer: number;
}

/** Parses JSONL rows `{id?, question | problem, answer: integer | "integer"}`. */
export function parseExact(text: string, source: string): ExactCase[] {
  const out: ExactCase[] = [];
  const ids = new CaseIds(source, 'id');
  for (const { row, line, where } of jsonlRows(text, source)) {
    const question = row.question ?? row.problem;
    if (typeof question !== 'string') throw new UserError('input', `${where}: "question" (or "problem") must be a string`);
    const answer = typeof row.answer === 'string' ? Number(row.answer.trim()) : row.answer;
    if (typeof answer !== 'number' || !Number.isInteger(answer)) throw new UserError('input', `${where}: "answer" must be an integer`);
    out.push({ id: ids.assign(row, line, { question, answer }), question, answer });
  }
  return out;
}

/**
 * How the question is put: `boxed` (the default) adds the instruction to reason step by step and
 * box the answer; `plain` sends the question as written, for a model trained on plain questions
 * (gpt-oss-nano), whose answer is then its last number.
 */
export type ExactPromptStyle = 'boxed' | 'plain';
export const EXACT_PROMPT_STYLES: readonly ExactPromptStyle[] = ['boxed', 'plain'];

/** `value` as a prompt style; anything else is a usage error naming `what` (the flag or option). */
export function parseExactPromptStyle(value: unknown, what: string): ExactPromptStyle {
  const style = EXACT_PROMPT_STYLES.find((s) => s === value);
  if (style === undefined) throw new UserError('usage', `${what} must be ${EXACT_PROMPT_STYLES.join(' or ')}, got ${JSON.stringify(value)}`);
  return style;
}

export function exactPrompt(question: string, style: ExactPromptStyle = 'boxed'): string {
  return style === 'plain' ? question : `${question}\n\nReason step by step, then put your final answer (an integer) within \\boxed{}.`;
}

/** Contents of every \boxed{...} / \framebox{...}, allowing one level of nested braces. */
function boxedContents(text: string): string[] {
  return [...text.matchAll(/\\(?:boxed|framebox)\{((?:[^{}]|\{[^{}]*\})*)\}/g)].map((m) => m[1]!);
}

/**
 * A number as written, decimals whole ("2.5" is not 2 and 5; a hyphen after a digit is no minus
 * sign), unless it follows "per": a rate's denominator ("120 mg per 5 mL") says what the answer is
 * counted per, not what it is.
 */
const ANSWER_NUMBER = /(?<![\d.])(?<!\bper\s+)-?\d+(?:\.\d+)?/gi;

/**
 * The answer: the last boxed value (its last comma-separated part), else the last number in the
 * text; an integer to grade, or the decimal read (which grades wrong), or undefined. Citations, as
 * marks (`【1†L9】`) or the links the server made of them, are left out: their cursor, line numbers
 * and file names are no answer.
 */
export function extractInteger(answer: string): number | undefined {
  const text = withoutCitations(answer);
  const boxed = boxedContents(text).at(-1);
  // Thousands separators go first, so that "1,000" is one number and "3, 7" two parts.
  const withoutSeparators = (boxed ?? text).replace(/(\d),(?=\d{3}\b)/g, '$1');
  const source = boxed !== undefined ? (withoutSeparators.split(',').at(-1) ?? withoutSeparators) : withoutSeparators;
  const numbers = [...source.matchAll(ANSWER_NUMBER)].map((m) => Number(m[0]));
  const pick = boxed !== undefined ? numbers[0] : numbers.at(-1);
  return pick !== undefined && Number.isFinite(pick) && (!Number.isInteger(pick) || Number.isSafeInteger(pick)) ? pick : undefined;
}

export async function runExactCase(model: Sampler, c: ExactCase, sample: SampleOptions, style: ExactPromptStyle = 'boxed'): Promise<CaseResult> {
  const started = performance.now();
  const prompt: ChatMessage[] = [{ role: 'user', content: exactPrompt(c.question, style) }];
  const response = await model.complete(prompt, sample);
  const extracted = extractInteger(response.text);
  const score = extracted === c.answer ? 1 : 0;
  return {
    id: c.id, score, metrics: { accuracy: score }, prompt, response,
    details: { expected: c.answer, extracted: extracted ?? null },
    seconds: (performance.now() - started) / 1000,
  };
}

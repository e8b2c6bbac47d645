// Multiple-choice evaluation (GPQA-style): each case has a question, its choices and the correct
// one. Choices are shuffled with a fixed seed and the case's id (so every model, every run and
// every subset of the file shows a case in the same order), the model is asked for a letter, and
// the letter is extracted from its final answer.
import { createHash } from 'node:crypto';
import { UserError } from '../errors.ts';
import { CaseIds, jsonlRows } from './jsonl.ts';
import { seededPermutation } from './stats.ts';
import type { CaseResult, ChatMessage, SampleOptions, Sampler } from './types.ts';

export interface McqCase {
  id: string;
  question: string;
  choices: string[];
  /** Index of the correct choice in `choices` (before shuffling). */
  answer: number;
}

const LETTERS = 'ABCDEFGHIJ';

/** Parses JSONL rows `{id?, question, choices: string[], answer: "B" | 1 | "<text of a choice>"}`. */
export function parseMcq(text: string, source: string): McqCase[] {
  const out: McqCase[] = [];
  const ids = new CaseIds(source, 'id');
  for (const { row, line, where } of jsonlRows(text, source)) {
    if (typeof row.question !== 'string') throw new UserError('input', `${where}: "question" must be a string`);
    const choices = row.choices;
    if (!Array.isArray(choices) || choices.length < 2 || choices.length > LETTERS.length || !choices.every((c) => typeof c === 'string')) {
      throw new UserError('input', `${where}: "choices" must be a list of 2 to ${LETTERS.length} strings`);
    }
    let answer = -1;
    if (typeof row.answer === 'number') answer = row.answer;
    else if (typeof row.answer === 'string') {
      answer = row.answer.length === 1 ? LETTERS.indexOf(row.answer.toUpperCase()) : -1;
      if (answer < 0) answer = choices.indexOf(row.answer);
    }
    if (!Number.isInteger(answer) || answer < 0 || answer >= choices.length) {
      throw new UserError('input', `${where}: "answer" must be a letter, an index or the text of one of the choices`);
    }
    out.push({ id: ids.assign(row, line, { question: row.question, choices, answer }), question: row.question, choices: choices as string[], answer });
  }
  return out;
}

/**
 * A permutation of 0..n-1 determined by (seed, case id): choices are presented in this order. The
 * id, not the case's position: a position changes with --n and with lines added or removed above
 * the case, which showed the same question in another order (and mixed orders in a resumed run).
 */
export function choicePermutation(n: number, seed: number, caseId: string): number[] {
  const digest = createHash('sha256').update(`${seed}\u0000${caseId}`).digest();
  return seededPermutation(n, digest.readUInt32LE(0));
}

export function mcqPrompt(question: string, shownChoices: readonly string[]): string {
  const letters = LETTERS.slice(0, shownChoices.length).split('');
  const lines = [
    'Answer the following multiple-choice question. Think it through, then give your final answer on its own line as "Answer: X", where X is one of ' +
      letters.map((l) => `'${l}'`).join(', ') + '.',
    '',
    question,
    '',
    ...shownChoices.map((c, i) => `${letters[i]}) ${c}`),
  ];
  return lines.join('\n');
}

/**
 * Finds the chosen letter in a final answer, trying the most explicit forms first:
 * "Answer: X" (with optional markdown emphasis or parentheses), \boxed{X}, "Option X",
 * a bare "(X)" or "**X**", and finally a line that starts with the letter.
 */
export function extractChoice(text: string, choiceCount: number): string | undefined {
  const set = LETTERS.slice(0, choiceCount);
  const L = `([${set}])`;
  const patterns = [
    new RegExp(`answers?\\s*(?:\\*\\*|__)?\\s*(?:is|:|-|–)?\\s*(?:\\*\\*|__)?\\s*\\(?${L}\\)?(?![A-Za-z0-9])`, 'gi'),
    new RegExp(`\\\\boxed\\{\\s*(?:\\\\text(?:bf)?\\{)?\\s*${L}`, 'g'),
    new RegExp(`\\b(?:option|choice)\\s*[:\\-–]?\\s*${L}\\b`, 'gi'),
    new RegExp(`(?<![A-Za-z0-9])[(\\[]\\s*${L}\\s*[)\\]](?![A-Za-z0-9])`, 'g'),
    new RegExp(`(?<![A-Za-z0-9])(?:\\*\\*|__|\\*|_)${L}(?:\\*\\*|__|\\*|_)(?![A-Za-z0-9])`, 'g'),
    new RegExp(`^\\s*(?:\\*\\*|__)?${L}(?:\\*\\*|__)?\\s*(?:[.):\\-–]|$)`, 'gm'),
  ];
  for (const p of patterns) {
    const matches = [...text.matchAll(p)];
    const last = matches.at(-1)?.[1];
    if (last !== undefined) return last.toUpperCase();
  }
  return undefined;
}

export async function runMcqCase(model: Sampler, c: McqCase, seed: number, sample: SampleOptions): Promise<CaseResult> {
  const started = performance.now();
  const perm = choicePermutation(c.choices.length, seed, c.id);
  const shown = perm.map((i) => c.choices[i]!);
  const correctLetter = LETTERS[perm.indexOf(c.answer)]!;
  const prompt: ChatMessage[] = [{ role: 'user', content: mcqPrompt(c.question, shown) }];
  const response = await model.complete(prompt, sample);
  const extracted = extractChoice(response.text, c.choices.length);
  const score = extracted === correctLetter ? 1 : 0;
  return {
    id: c.id, score, metrics: { accuracy: score }, prompt, response,
    details: { correct: correctLetter, extracted: extracted ?? null, permutation: perm },
    seconds: (performance.now() - started) / 1000,
  };
}

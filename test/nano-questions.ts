// The questions the tests ask the shipped gpt-oss-nano, in one list (NANO_QUESTIONS): when new
// weights land, the tests follow by editing a line of it. Each is a held-out item of the corpus the
// model was trained on (seed 0, as `npm run train:nano` writes it): the question, its date and
// reasoning effort, the tools it needs and the true answer all come from the corpus generator
// (src/train/nano), and answers are judged by its scorer (score.ts), so no fact is restated here.
// Also: the shipped model expanded into a cache of the test's own, the tools each question needs,
// and the check that a citation quotes the document line stating the answer.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureNano, nanoDocsDir } from '../src/checkpoint/nano.ts';
import type { SystemContent } from '../src/harmony/index.ts';
import { BrowserSession, LocalDocsBackend, PythonTool, resolveCitations, type Citation, type CitationSource } from '../src/tools/index.ts';
import { generateCorpus, type CorpusItem } from '../src/train/nano/corpus.ts';
import { answerStates } from '../src/train/nano/score.ts';

/**
 * What the shipped weights do with the question: `right` (valid harmony, the right tool calls and
 * the right answer, as score.ts judges them: the tests assert all three) or `calls-tools` (valid
 * harmony with a call to each tool the question needs and its result read back; the answer is
 * not asserted, as these weights get it wrong).
 */
export type NanoExpectation = 'right' | 'calls-tools';

export interface NanoQuestion {
  /**
   * A held-out item id of the corpus (`heldout-N`): `npm run nano:corpus` lists them with their
   * task and question in heldout-meta.jsonl, and `npm run nano:eval` reports each one's answer.
   */
  item: string;
  expect: NanoExpectation;
}

export const NANO_QUESTIONS: readonly NanoQuestion[] = [
  { item: 'heldout-25', expect: 'right' }, //        browser: "What does the monograph say is the strength of paracetamol?"
  { item: 'heldout-144', expect: 'right' }, //       python: "Weighing 15 kg and drug at 7.50 mg/kg and max 800 mg. What is the dose?"
  { item: 'heldout-30', expect: 'right' }, //        browser: "What does the monograph say is the max dose in 24 hours of Ibuprofen?"
  { item: 'heldout-38', expect: 'right' }, //        no tool: "Tell me a joke."
  { item: 'heldout-35', expect: 'right' }, //        python: "Times 28 by 55 for me."
  { item: 'heldout-22', expect: 'calls-tools' }, //  python: "6 doses of 141 mg each. What is the total?"
];

/** Seed of the corpus the shipped model was trained on. */
export const NANO_CORPUS_SEED = 0;

export interface NanoCase extends CorpusItem {
  expect: NanoExpectation;
  /** The system message's date the corpus gave the question. */
  date: string;
  /** The recipients the answer must call, in order (browser.search before browser.open). */
  calls: string[];
}

const CALLS: Record<string, string[]> = { browser: ['browser.search', 'browser.open'], python: ['python'], 'browser+python': ['browser.search', 'browser.open', 'python'] };

/** NANO_QUESTIONS as the corpus generator writes them. */
export async function nanoCases(): Promise<NanoCase[]> {
  const backend = await openNanoDocs();
  const indices = NANO_QUESTIONS.map((q) => {
    const m = /^heldout-(\d+)$/.exec(q.item);
    if (m === null) throw new Error(`NANO_QUESTIONS: "${q.item}" is not a held-out item id (heldout-N)`);
    return Number(m[1]);
  });
  const corpus = await generateCorpus({
    seed: NANO_CORPUS_SEED, train: 0, heldout: Math.max(...indices) + 1,
    tools: { browser: new BrowserSession(backend).namespace(), python: new PythonTool().namespace() },
    browser: () => new BrowserSession(backend),
  });
  return NANO_QUESTIONS.map((q, i) => {
    const item = corpus.heldout[indices[i]!]!;
    const system = item.conversation.messages[0]!.content[0] as SystemContent;
    return { ...item, expect: q.expect, date: system.conversationStartDate!, calls: item.tool === null ? [] : CALLS[item.tool]! };
  });
}

/** The documents the model searches, indexed. */
export async function openNanoDocs(): Promise<LocalDocsBackend> {
  const backend = await LocalDocsBackend.open(nanoDocsDir());
  await backend.indexed;
  return backend;
}

/** The shipped model expanded into a cache folder of the test's own; `remove` deletes the folder. */
export function expandNano(): { dir: string; cache: string; remove: () => void } {
  const cache = mkdtempSync(join(tmpdir(), 'gptoss-nano-test-'));
  return { dir: ensureNano(undefined, cache).dir, cache, remove: () => rmSync(cache, { recursive: true, force: true }) };
}

/**
 * The citations of a final answer that do not quote a document line stating the true answer (with
 * its unit), resolved against the browser session the answer was written in; none cited is none wrong.
 */
export function wrongCitations(item: NanoCase, finalText: string, browser: CitationSource): Citation[] {
  return resolveCitations(finalText, browser).citations.filter((c) => !answerStates(item, c.quote));
}

// Scores a model's answers to the gpt-oss-nano held-out split. A completion is what follows the
// prompt's `<|start|>assistant` in an agent run: the model's messages with the tools' messages
// between them, as harmony text or token ids. Per reasoning effort and overall: the share that
// parse as valid harmony (strict parser, ending in a final-channel answer), the share with the
// right tool call where one is needed (python: the expected code, or other code whose output is
// the true value alone, so an error that echoes the code's numbers is no result; browser: a search then an open; a dose from the documents: both) and no tool call where none is, and the share whose
// final answer states the true number with its unit (out of domain: says what it can help with).
import { parseMessagesFromCompletionTokens, REASONING_EFFORTS, type Message, type ReasoningEffort } from '../../harmony/index.ts';
import { getTokenizer, type Tokenizer } from '../../tokenizer/index.ts';
import type { CorpusItem } from './corpus.ts';
import type { TaskKind } from './tasks.ts';
import { pyRound } from './python.ts';

/** An item to score; with its task, the report also gives that task's shares. */
export type ScoredItem = Pick<CorpusItem, 'id' | 'effort' | 'tool' | 'answer' | 'unit' | 'code'> & Partial<Pick<CorpusItem, 'task'>>;

export interface ItemScore {
  id: string;
  effort: ReasoningEffort;
  valid: boolean;
  /** A completion that does not parse counts as wrong on every measure. */
  toolCorrect: boolean;
  answerCorrect: boolean;
  /** Why it failed, for reading a report. */
  problem?: string;
}

export interface Shares {
  count: number;
  valid: number;
  toolCorrect: number;
  answerCorrect: number;
}

export interface ScoreReport {
  items: ItemScore[];
  byEffort: Record<ReasoningEffort, Shares>;
  /** Shares per task, for the items that name theirs (in the order tasks first appear). */
  byTask: Partial<Record<TaskKind, Shares>>;
  overall: Shares;
}

const CHANNELS = new Set(['analysis', 'commentary', 'final']);

function text(m: Message): string {
  return m.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
}

/** The numbers written in a text ("1,250" is 1250), leaving out citations ("【1†L9】"), whose numbers are no answer. */
export function numbersIn(s: string): number[] {
  return (s.replace(/【[^】]*】/g, ' ').match(/\d[\d,]*(?:\.\d+)?|\.\d+/g) ?? []).map((n) => Number(n.replace(/,/g, ''))).filter((n) => Number.isFinite(n));
}

function decimalsOf(v: number): number {
  const s = String(v);
  return s.includes('.') ? s.length - s.indexOf('.') - 1 : 0;
}

/** Whether `x` states `answer`: equal, or equal once rounded to the answer's decimals. */
export function statesNumber(x: number, answer: number): boolean {
  return Math.abs(x - answer) <= 1e-9 * Math.max(1, Math.abs(answer)) || pyRound(x, decimalsOf(answer)) === answer;
}

const HELP_WORDS = /clinical|dose|conversion|infusion|BMI/i;

/**
 * Whether a python tool's output is the value alone, as the corpus's code prints it: a traceback
 * quotes the failing line ("print(round(15 / (50 / 50),, 2))"), whose numbers are no result.
 */
function printsValue(output: string, answer: number): boolean {
  const out = output.trim();
  return /^-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i.test(out) && statesNumber(Number(out), answer);
}

/** Whether a final answer states the item's true number with its unit (out of domain: says what it can help with, and no number). */
export function answerStates(item: Pick<ScoredItem, 'answer' | 'unit'>, final: string): boolean {
  if (item.answer === undefined) return HELP_WORDS.test(final) && numbersIn(final).length === 0;
  return numbersIn(final).some((x) => statesNumber(x, item.answer!)) && (item.unit === undefined || item.unit === '' || final.includes(item.unit));
}

/** Scores one completion against its held-out item. */
export function scoreCompletion(item: ScoredItem, completion: string | readonly number[], tokenizer: Tokenizer = getTokenizer()): ItemScore {
  const base = { id: item.id, effort: item.effort };
  let messages: Message[];
  try {
    const tokens = typeof completion === 'string' ? tokenizer.encode(completion, { allowedSpecial: 'all' }) : completion;
    messages = parseMessagesFromCompletionTokens(tokens, 'assistant', { strict: true, tokenizer });
  } catch (e) {
    return { ...base, valid: false, toolCorrect: false, answerCorrect: false, problem: `not valid harmony: ${e instanceof Error ? e.message : String(e)}` };
  }
  const assistant = messages.filter((m) => m.author.role === 'assistant');
  const last = messages[messages.length - 1];
  const badChannel = assistant.find((m) => m.channel === undefined || !CHANNELS.has(m.channel));
  if (last === undefined || last.author.role !== 'assistant' || last.channel !== 'final' || last.recipient !== undefined || badChannel !== undefined) {
    const problem = badChannel !== undefined ? `an assistant message on channel ${JSON.stringify(badChannel.channel ?? null)}` : 'it does not end in a final answer';
    return { ...base, valid: false, toolCorrect: false, answerCorrect: false, problem };
  }
  const calls = messages.map((m, i) => ({ m, i })).filter(({ m }) => m.author.role === 'assistant' && m.recipient !== undefined);
  const pythonRight = (): boolean => calls.some(({ m, i }) => {
    if (m.recipient !== 'python') return false;
    if (item.code !== undefined && text(m).trim() === item.code.trim()) return true;
    const result = messages[i + 1];
    return result !== undefined && result.author.role === 'tool' && item.answer !== undefined && printsValue(text(result), item.answer);
  });
  const browserRight = (): boolean => {
    const search = calls.findIndex(({ m }) => m.recipient === 'browser.search');
    return search >= 0 && calls.slice(search + 1).some(({ m }) => m.recipient === 'browser.open');
  };
  const toolCorrect = item.tool === null ? calls.length === 0
    : item.tool === 'python' ? pythonRight()
    : item.tool === 'browser' ? browserRight()
    : browserRight() && pythonRight();
  const answerCorrect = answerStates(item, text(last));
  const out: ItemScore = { ...base, valid: true, toolCorrect, answerCorrect };
  if (!toolCorrect) out.problem = item.tool === null ? 'a tool call where none is needed' : `no correct ${item.tool} call`;
  else if (!answerCorrect) out.problem = 'the final answer does not state the true value with its unit';
  return out;
}

function shares(scores: ItemScore[]): Shares {
  const n = scores.length;
  const share = (f: (s: ItemScore) => boolean): number => (n === 0 ? 0 : scores.filter(f).length / n);
  return { count: n, valid: share((s) => s.valid), toolCorrect: share((s) => s.toolCorrect), answerCorrect: share((s) => s.answerCorrect) };
}

/** Scores completions by item id; an item without a completion counts as wrong on every measure. */
export function scoreHeldout(items: readonly ScoredItem[], completions: ReadonlyMap<string, string | readonly number[]>, tokenizer: Tokenizer = getTokenizer()): ScoreReport {
  const scores = items.map((item) => {
    const c = completions.get(item.id);
    return c === undefined
      ? { id: item.id, effort: item.effort, valid: false, toolCorrect: false, answerCorrect: false, problem: 'no completion' }
      : scoreCompletion(item, c, tokenizer);
  });
  const byEffort = Object.fromEntries(REASONING_EFFORTS.map((e) => [e, shares(scores.filter((s) => s.effort === e))])) as Record<ReasoningEffort, Shares>;
  const tasks = [...new Set(items.flatMap((item) => (item.task !== undefined ? [item.task] : [])))];
  const byTask = Object.fromEntries(tasks.map((t) => [t, shares(scores.filter((_, i) => items[i]!.task === t))])) as Partial<Record<TaskKind, Shares>>;
  return { items: scores, byEffort, byTask, overall: shares(scores) };
}

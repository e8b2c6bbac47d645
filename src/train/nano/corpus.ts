// The gpt-oss-nano corpus: seeded harmony conversations, in exactly the shape the agent loop
// produces. The system message declares the python and browser tools (their namespaces are passed
// in, as the tools themselves declare them); the model plans in the analysis channel, calls
// `python` with code (content type `code`) or `browser.search` / `browser.open` with JSON, reads
// the tool's message and answers in the final channel. Python results are computed here exactly as
// the tool prints them (python.ts); browser results come from a real browser session over the
// documents, passed in because tools sit above training in the import order.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  conversationToJSON, createMessage, message, REASONING_EFFORTS, systemContent,
  type Conversation, type Message, type ReasoningEffort, type ToolNamespaces,
} from '../../harmony/index.ts';
import { seededRandom } from '../../random.ts';
import { getTokenizer, type Tokenizer } from '../../tokenizer/index.ts';
import { trainingExamples } from '../data.ts';
import { doseLookupProblem, lookupProblem, outOfDomainProblem, type Drug, type Fact } from './lookup.ts';
import { hash32, pick, pythonProblem, TASKS, type Rng, type Split, type TaskKind } from './tasks.ts';

/** A tool call as the agent loop hands it to a tool, and the part of the answer the corpus uses. */
export interface CorpusToolCall {
  recipient: string;
  content: string;
  channel?: string;
  contentType?: string;
}
export interface CorpusTool {
  run(call: CorpusToolCall): Promise<{ author?: string; content: string; channel?: string }>;
}

export interface CorpusOptions {
  seed: number;
  /** Conversations in the training split. */
  train: number;
  /** Conversations in the held-out split. */
  heldout: number;
  /** The system message's tools: `python` and `browser` as the tools declare them. */
  tools: ToolNamespaces;
  /** A fresh browser session over the documents (one per conversation: cursors start at 0). */
  browser: () => CorpusTool;
}

/** What a conversation tests, beside the conversation itself (one line of the `-meta` files). */
export interface CorpusItem {
  id: string;
  split: Split;
  task: TaskKind;
  template: string;
  effort: ReasoningEffort;
  question: string;
  /** The numbers the user gave. */
  operands: number[];
  /** The tool the answer needs, if any ('browser+python': a lookup, then the computation). */
  tool: 'python' | 'browser' | 'browser+python' | null;
  /** The true answer and its unit (none out of domain). */
  answer?: number;
  unit?: string;
  /** python: the code and what it prints. */
  code?: string;
  printed?: string;
  conversation: Conversation;
}

/** Share of each task in the corpus (relative weights). */
export const TASK_WEIGHTS: Record<TaskKind, number> = {
  add: 1, subtract: 1, multiply: 1, divide: 1, convert: 1.5, dose: 2, infusion: 1.5, bmi: 1, lookup: 1.5, 'lookup-dose': 1.5, 'out-of-domain': 0.6,
};

function drawTask(rng: Rng): TaskKind {
  const entries = Object.entries(TASK_WEIGHTS) as [TaskKind, number][];
  let r = rng() * entries.reduce((s, [, w]) => s + w, 0);
  for (const [task, w] of entries) {
    r -= w;
    if (r < 0) return task;
  }
  return entries[entries.length - 1]![0];
}

/**
 * The conversations' dates: varied, so the model learns the system message's date is no part of
 * the answer, but few, so that many conversations share their whole system message (date and
 * reasoning effort) and training runs it once per batch (a shared prefix).
 */
export const CORPUS_DATES = [
  '2025-01-14', '2025-03-02', '2025-04-27', '2025-06-09', '2025-07-31', '2025-09-18',
  '2025-11-05', '2025-12-23', '2026-02-11', '2026-04-06', '2026-07-19', '2026-10-28',
] as const;

function drawDate(rng: Rng): string {
  return pick(rng, CORPUS_DATES);
}

const analysis = (t: string): Message => message.assistant(t, { channel: 'analysis' });

function toolCall(recipient: string, content: string): Message {
  return message.assistant(content, { channel: 'analysis', recipient, contentType: 'code' });
}

/** Runs `call` and returns the tool message the agent loop appends for its answer. */
async function runTool(tool: CorpusTool, call: Message): Promise<Message> {
  const text = call.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
  const out = await tool.run({ recipient: call.recipient!, content: text, channel: call.channel!, contentType: call.contentType! });
  return createMessage({ role: 'tool', name: out.author ?? call.recipient! }, out.content, { recipient: 'assistant', channel: out.channel ?? call.channel! });
}

async function item(options: CorpusOptions, split: Split, index: number): Promise<CorpusItem> {
  const rng = seededRandom(hash32(`${options.seed}:${split}:${index}`));
  const task = drawTask(rng);
  const effort = pick(rng, REASONING_EFFORTS);
  const system = createMessage('system', systemContent({ reasoningEffort: effort, conversationStartDate: drawDate(rng), tools: options.tools }));
  const id = `${split}-${index}`;
  if (task === 'out-of-domain') {
    const p = outOfDomainProblem(rng, split);
    const plan = effort === 'low' ? 'Out of scope.' : effort === 'medium' ? 'This is not a clinical calculation. I should say what I can help with.' : 'The user asks something outside clinical arithmetic and drug lookups. No tool applies; I should briefly say what I can help with.';
    return {
      id, split, task, template: p.template, effort, question: p.question, operands: [], tool: null,
      conversation: { messages: [system, message.user(p.question), analysis(plan), message.assistant(p.reply, { channel: 'final' })] },
    };
  }
  if (task === 'lookup') {
    const p = lookupProblem(rng, split);
    const plan = effort === 'low' ? `Search the documents for ${p.query}.` : effort === 'medium' ? `I need the ${p.phrase} of ${p.drug.name} from the documents. I will search for it.` : `The user asks for the ${p.phrase} of ${p.drug.name}. This is a fact from the local documents, so I will search for the ${p.drug.name} monograph, open it and cite the line.`;
    const read = await browse(options.browser(), p.drug, p.query, effort, id);
    const cite = read.cite(p.fact);
    const answer = `${p.fact.value} ${p.fact.unit}`;
    const messages = [system, message.user(p.question), analysis(plan), ...read.messages];
    if (effort === 'high') messages.push(analysis(`Line ${read.line(p.fact)} says: ${p.fact.line}. So the ${p.phrase} is ${answer}.`));
    messages.push(message.assistant(`The ${p.phrase} of ${p.drug.name} is ${answer} ${cite}.`, { channel: 'final' }));
    return {
      id, split, task, template: p.template, effort, question: p.question, operands: [], tool: 'browser',
      answer: p.fact.value, unit: p.fact.unit, conversation: { messages },
    };
  }
  if (task === 'lookup-dose') {
    const p = doseLookupProblem(rng, split);
    const name = p.drug.name;
    const plan = effort === 'low' ? `Look up ${name}: mg/kg and max dose.` : effort === 'medium' ? `I need the ${name} dose per kg and its maximum single dose from the documents, then the dose for ${p.kg} kg.` : `The user wants a weight-based ${name} dose for ${p.kg} kg. I will look up the mg/kg dose and the maximum single dose in the ${name} monograph, compute the dose with python and cap it at the maximum, then cite the lines.`;
    const read = await browse(options.browser(), p.drug, p.query, effort, id);
    const facts = `Line ${read.line(p.perKg)}: ${p.perKg.value} mg/kg; line ${read.line(p.max)}: maximum ${p.max.value} mg.`;
    const compute = analysis(effort === 'low' ? `${p.perKg.value} mg/kg x ${p.kg} kg, max ${p.max.value} mg.` : `${facts} So the dose is ${p.perKg.value} x ${p.kg} mg, at most ${p.max.value} mg. I will compute it with python.`);
    const call = toolCall('python', p.code);
    const result = message.tool('python', `${p.printed}\n`, { channel: 'analysis' });
    const messages = [system, message.user(p.question), analysis(plan), ...read.messages, compute, call, result];
    const capped = p.product > p.max.value;
    if (effort === 'high') messages.push(analysis(`Check: ${p.perKg.value} x ${p.kg} = ${p.product} mg is ${capped ? 'above' : 'within'} the ${p.max.value} mg maximum, so the dose is ${p.answer} mg.`));
    const why = capped ? `${p.perKg.value} mg/kg x ${p.kg} kg would be ${p.product} mg, above the ${p.max.value} mg maximum` : `${p.perKg.value} mg/kg x ${p.kg} kg, below the ${p.max.value} mg maximum`;
    messages.push(message.assistant(`Give ${p.answer} mg of ${name} (${why}) ${read.cite(p.perKg)}${read.cite(p.max)}.`, { channel: 'final' }));
    return {
      id, split, task, template: p.template, effort, question: p.question, operands: [p.kg], tool: 'browser+python',
      answer: p.answer, unit: 'mg', code: p.code, printed: p.printed, conversation: { messages },
    };
  }
  const p = pythonProblem(task, rng, split);
  const call = toolCall('python', p.code);
  // The stateless tool answers with the code's stdout: print's text and its newline.
  const result = message.tool('python', `${p.printed}\n`, { channel: 'analysis' });
  const messages = [system, message.user(p.question), analysis(p.plan[effort]), call, result];
  if (effort === 'high') messages.push(analysis(p.check));
  messages.push(message.assistant(p.final, { channel: 'final' }));
  return {
    id, split, task, template: p.template, effort, question: p.question, operands: p.operands, tool: 'python',
    answer: p.answer, unit: p.unit, code: p.code, printed: p.printed, conversation: { messages },
  };
}

/** A search for the drug's monograph and its opening, run through the browser; where each fact's line is. */
async function browse(browser: CorpusTool, drug: Drug, query: string, effort: ReasoningEffort, id: string): Promise<{ messages: Message[]; line: (f: Fact) => number; cite: (f: Fact) => string }> {
  const search = toolCall('browser.search', JSON.stringify({ query }));
  const results = await runTool(browser, search);
  const link = new RegExp(`【(\\d+)†${escapeRegExp(drug.title)}†`).exec(messageText(results));
  if (link === null) throw new Error(`${id}: the search for "${query}" did not list "${drug.title}"`);
  const choose = analysis(effort === 'low' ? `Open result ${link[1]}.` : `Result ${link[1]} is the ${drug.title}. I will open it.`);
  const open = toolCall('browser.open', JSON.stringify({ id: Number(link[1]) }));
  const page = await runTool(browser, open);
  const pageText = messageText(page);
  const cursor = /^\[(\d+)\]/.exec(pageText);
  if (cursor === null) throw new Error(`${id}: the opened page has no cursor`);
  const line = (f: Fact): number => {
    const m = new RegExp(`^L(\\d+): - ${escapeRegExp(f.line)}`, 'm').exec(pageText);
    if (m === null) throw new Error(`${id}: the opened ${drug.name} page does not show "${f.line}"`);
    return Number(m[1]);
  };
  return { messages: [search, results, choose, open, page], line, cite: (f) => `【${cursor[1]}†L${line(f)}】` };
}

function messageText(m: Message): string {
  return m.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface Corpus {
  train: CorpusItem[];
  heldout: CorpusItem[];
}

/** The corpus for `options.seed`: the same options give the same conversations. */
export async function generateCorpus(options: CorpusOptions): Promise<Corpus> {
  const train: CorpusItem[] = [];
  const heldout: CorpusItem[] = [];
  for (let i = 0; i < options.train; i++) train.push(await item(options, 'train', i));
  for (let i = 0; i < options.heldout; i++) heldout.push(await item(options, 'heldout', i));
  return { train, heldout };
}

/** Conversation counts per task and split. */
export function coverage(corpus: Corpus): Record<Split, Record<TaskKind, number>> {
  const count = (items: CorpusItem[]): Record<TaskKind, number> => {
    const out = Object.fromEntries(TASKS.map((t) => [t, 0])) as Record<TaskKind, number>;
    for (const it of items) out[it.task]++;
    return out;
  };
  return { train: count(corpus.train), heldout: count(corpus.heldout) };
}

/**
 * The sorted token ids the model needs: every token of both splits' rendered conversations, plus
 * every number from 0 to 999 with and without a leading space (o200k splits digits in threes), so
 * a number unseen in training still has live rows.
 */
export function corpusVocabulary(corpus: Corpus, tokenizer: Tokenizer = getTokenizer()): number[] {
  const used = new Set<number>();
  for (const it of [...corpus.train, ...corpus.heldout]) {
    for (const e of trainingExamples(it.conversation, it.id, tokenizer)) for (const t of e.tokens) used.add(t);
  }
  for (let n = 0; n < 1000; n++) {
    for (const s of [String(n), ` ${n}`, String(n).padStart(3, '0')]) for (const t of tokenizer.encodeOrdinary(s)) used.add(t);
  }
  return [...used].sort((a, b) => a - b);
}

export const CORPUS_FILES = {
  train: 'train.jsonl',
  heldout: 'heldout.jsonl',
  trainMeta: 'train-meta.jsonl',
  heldoutMeta: 'heldout-meta.jsonl',
  vocabulary: 'vocabulary.json',
  manifest: 'manifest.json',
} as const;

/** The metadata line of an item (everything but the conversation). */
export function itemMeta(it: CorpusItem): Omit<CorpusItem, 'conversation'> {
  const { conversation: _, ...meta } = it;
  return meta;
}

/** Writes the corpus to `dir`: conversations as harmony JSON lines, their metadata, the vocabulary and a manifest. */
export function writeCorpus(dir: string, corpus: Corpus, seed: number, tokenizer: Tokenizer = getTokenizer()): void {
  mkdirSync(dir, { recursive: true });
  const lines = (items: CorpusItem[], f: (it: CorpusItem) => unknown): string => items.map((it) => JSON.stringify(f(it))).join('\n') + '\n';
  writeFileSync(join(dir, CORPUS_FILES.train), lines(corpus.train, (it) => conversationToJSON(it.conversation)));
  writeFileSync(join(dir, CORPUS_FILES.heldout), lines(corpus.heldout, (it) => conversationToJSON(it.conversation)));
  writeFileSync(join(dir, CORPUS_FILES.trainMeta), lines(corpus.train, itemMeta));
  writeFileSync(join(dir, CORPUS_FILES.heldoutMeta), lines(corpus.heldout, itemMeta));
  const vocabulary = corpusVocabulary(corpus, tokenizer);
  writeFileSync(join(dir, CORPUS_FILES.vocabulary), JSON.stringify(vocabulary) + '\n');
  const manifest = { seed, train: corpus.train.length, heldout: corpus.heldout.length, vocabulary: vocabulary.length, coverage: coverage(corpus) };
  writeFileSync(join(dir, CORPUS_FILES.manifest), JSON.stringify(manifest, null, 2) + '\n');
}

// gpt-oss-nano's held-out evaluation through the real agent loop (the turn API, as every front end): the corpus generator's held-out
// questions (same seed as the training corpus) asked at each reasoning effort with the prompt the
// corpus renders (the same tools, in the same order, and the item's own date), answered greedily
// with the real python tool (a sandbox pool of its own) and a fresh browser session over the
// documents per question, and scored by the corpus's scorer: the share of valid harmony, of right
// tool calls and of right final answers, per effort. The completion scored is exactly what the
// loop saw after the prompt: each generation's tokens, and between them the tool's message and the
// `<|start|>assistant` that reopens the model's turn. askNano asks one question that way (the
// tests ask the shipped model through it too).
import type { AgentEvent, AgentResult } from '../engine/agent.ts';
import type { Engine } from '../engine/engine.ts';
import { prepareTurn, runTurn } from '../engine/turn.ts';
import { REASONING_EFFORTS, createConversation, message, renderMessage, tokensToText, type ReasoningEffort } from '../harmony/index.ts';
import { getTokenizer } from '../tokenizer/index.ts';
import { BrowserSession, LocalDocsBackend, PythonTool, SandboxPool, type Tool } from '../tools/index.ts';
import { generateCorpus, type CorpusItem } from '../train/nano/corpus.ts';
import { scoreHeldout, type ItemScore, type ScoredItem, type Shares } from '../train/nano/score.ts';
import type { TaskKind } from '../train/nano/tasks.ts';
import type { SystemContent } from '../harmony/index.ts';

export interface NanoEvalOptions {
  /** The model, loaded (any checkpoint the engine runs: the MXFP4 export or the float one). */
  engine: Engine;
  /** The documents the browser searches (the model's: examples/nano-docs). */
  documents: string;
  /** Seed of the corpus the model was trained on (its held-out split is generated again). Default 0. */
  seed?: number;
  /** Held-out conversations the corpus has (as `nano:corpus --heldout`). Default 400. */
  heldout?: number;
  /** Ask only the first N questions (each at every effort). */
  limit?: number;
  /**
   * Which questions: `heldout` (default: unseen templates and numbers, the figures the goals are
   * about) or `train`, the corpus's training split of this seed (the training templates and
   * numbers; with a seed other than the model's own, combinations it never saw): how well the
   * model does what it was taught, beside how far it generalises. `train` asks `limit` questions
   * (default 400).
   */
  split?: 'heldout' | 'train';
  efforts?: readonly ReasoningEffort[];
  /** Most tokens per answer, over all its generations. Default 1024. */
  maxTokens?: number;
  /** After each answer: how many are done of how many. */
  onProgress?: (done: number, total: number) => void;
}

export interface NanoAnswer extends ItemScore {
  /** The corpus item asked. */
  item: string;
  question: string;
  /** The harmony text after the prompt's `<|start|>assistant`. */
  completion: string;
  finishReason: string;
  /** Tokens the model generated (tool results not included). */
  generatedTokens: number;
}

export interface NanoEvalSummary {
  model: string;
  settings: { seed: number; split: 'heldout' | 'train'; heldout: number; questions: number; efforts: ReasoningEffort[]; maxTokens: number; sampling: 'greedy' };
  byEffort: Partial<Record<ReasoningEffort, Shares>>;
  /** Shares per task (dose, convert, lookup, ...), all efforts together. */
  byTask: Partial<Record<TaskKind, Shares>>;
  overall: Shares;
  answers: NanoAnswer[];
}

/** How askNano asks. */
export interface AskNanoOptions {
  effort: ReasoningEffort;
  /** The system message's date (the corpus gives each question its own); default today. */
  date?: string;
  /** The built-in tools, in the order the corpus declares them (browser, then python). */
  tools: readonly Tool[];
  maxTokens: number;
  /** The loop's events as they happen (tool calls and results among them). */
  onEvent?: (event: AgentEvent) => void;
}

/**
 * Asks one question through the agent loop, greedy, prompted as the corpus renders it (the tools'
 * namespaces in the system message): the completion is what follows the prompt's
 * `<|start|>assistant` as the loop saw it, the tools' messages included (what score.ts scores).
 */
export async function askNano(engine: Engine, question: string, options: AskNanoOptions): Promise<{ completion: number[]; result: AgentResult }> {
  const reopen = getTokenizer().encode('<|start|>assistant', { allowedSpecial: 'all' });
  const conversation = createConversation({
    reasoningEffort: options.effort,
    ...(options.date !== undefined ? { date: options.date } : {}),
    toolNamespaces: options.tools.map((t) => t.namespace()),
  });
  const turn = prepareTurn({
    messages: [...conversation.messages, message.user(question)],
    builtinTools: options.tools, functionTools: [], functionSchemas: new Map(), sampling: { temperature: 0 }, maxTokens: options.maxTokens,
  });
  const completion: number[] = [];
  const { result } = await runTurn(engine, turn, {
    onEvent: (e) => {
      if (e.type === 'token') completion.push(e.token.token);
      else if (e.type === 'tool_result') completion.push(...renderMessage(e.message), ...reopen);
      options.onEvent?.(e);
    },
  });
  return { completion, result };
}

/** Runs the held-out questions through the agent loop on `options.engine` and scores the answers. */
export async function runNanoEval(options: NanoEvalOptions): Promise<NanoEvalSummary> {
  const seed = options.seed ?? 0;
  const heldout = options.heldout ?? 400;
  const split = options.split ?? 'heldout';
  const efforts = [...(options.efforts ?? REASONING_EFFORTS)];
  const maxTokens = options.maxTokens ?? 1024;
  const tokenizer = getTokenizer();
  const backend = await LocalDocsBackend.open(options.documents);
  await backend.indexed;
  const pool = new SandboxPool({});
  const python = new PythonTool({ pool });
  try {
    const corpus = await generateCorpus({
      seed, train: split === 'train' ? (options.limit ?? 400) : 0, heldout: split === 'train' ? 0 : heldout,
      tools: { browser: new BrowserSession(backend).namespace(), python: python.namespace() },
      browser: () => new BrowserSession(backend),
    });
    const asked = split === 'train' ? corpus.train : corpus.heldout;
    const items = asked.slice(0, options.limit ?? asked.length);
    const total = items.length * efforts.length;
    const scored: ScoredItem[] = [];
    const completions = new Map<string, number[]>();
    const runs: { id: string; item: CorpusItem; finishReason: string; generatedTokens: number }[] = [];
    for (const item of items) {
      const system = item.conversation.messages[0]!.content[0] as SystemContent;
      for (const effort of efforts) {
        const id = `${item.id}@${effort}`;
        const { completion: tokens, result } = await askNano(options.engine, item.question, {
          effort, tools: [new BrowserSession(backend), python], maxTokens,
          ...(system.conversationStartDate !== undefined ? { date: system.conversationStartDate } : {}),
        });
        runs.push({ id, item, finishReason: result.finishReason, generatedTokens: result.usage.completionTokens });
        scored.push({ id, effort, task: item.task, tool: item.tool, ...(item.answer !== undefined ? { answer: item.answer } : {}), ...(item.unit !== undefined ? { unit: item.unit } : {}), ...(item.code !== undefined ? { code: item.code } : {}) });
        completions.set(id, tokens);
        options.onProgress?.(runs.length, total);
      }
    }
    const report = scoreHeldout(scored, completions, tokenizer);
    const answers = report.items.map((s, i): NanoAnswer => ({
      ...s, item: runs[i]!.item.id, question: runs[i]!.item.question, completion: tokensToText(completions.get(s.id)!, tokenizer), finishReason: runs[i]!.finishReason, generatedTokens: runs[i]!.generatedTokens,
    }));
    const byEffort = Object.fromEntries(efforts.map((e) => [e, report.byEffort[e]])) as Partial<Record<ReasoningEffort, Shares>>;
    return {
      model: options.engine.info.name,
      settings: { seed, split, heldout, questions: items.length, efforts, maxTokens, sampling: 'greedy' },
      byEffort, byTask: report.byTask, overall: report.overall, answers,
    };
  } finally {
    await python.close();
    // Not awaited: the pool's idle interpreters are unref'd, so waiting for their exit could leave
    // nothing keeping the event loop alive; they are killed either way.
    void pool.close();
  }
}

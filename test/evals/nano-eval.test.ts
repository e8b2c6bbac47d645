// gpt-oss-nano's held-out evaluation through the real agent loop and the real tools: an engine
// that writes the corpus's own answers (tool calls included, the tools answering for real) scores
// 100% on every measure at every effort, and is prompted exactly as the corpus renders the
// question; `npm run nano:eval` runs end to end on the shipped model (12 tokens per answer, which
// cut every answer short, so only the figures' shape is checked; test/evals/nano-run.test.ts
// checks a run's figures against what the shipped model's answers warrant) and writes its JSON
// summary; bad arguments exit 2 with one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nanoDocsDir } from '../../src/checkpoint/nano.ts';
import { ScriptedEngine } from '../../src/engine/scripted.ts';
import { runNanoEval } from '../../src/evals/nano.ts';
import { REASONING_EFFORTS, renderConversationForCompletion, renderMessage, tokensToText } from '../../src/harmony/index.ts';
import { getTokenizer } from '../../src/tokenizer/index.ts';
import { BrowserSession, LocalDocsBackend, PythonTool } from '../../src/tools/index.ts';
import { generateCorpus, type CorpusItem } from '../../src/train/nano/corpus.ts';

const tok = getTokenizer();
const SEED = 11;
const LIMIT = 5;

/** The item's answer as the model would write it, one script per generation (a tool call ends one). */
function generations(item: CorpusItem): number[][] {
  const text = tokensToText(item.conversation.messages.slice(2).flatMap((m) => renderMessage(m)))
    .replace(/^<\|start\|>assistant/, '')
    .replace(/<\|end\|>$/, '<|return|>');
  // Between generations: the tool's message and the `<|start|>assistant` the loop writes itself.
  return text.split(/(?<=<\|call\|>)<\|start\|>[^<]*to=assistant[\s\S]*?<\|end\|><\|start\|>assistant/).map((g) => tok.encode(g, { allowedSpecial: 'all' }));
}

async function heldout(): Promise<CorpusItem[]> {
  const backend = await LocalDocsBackend.open(nanoDocsDir());
  await backend.indexed;
  const corpus = await generateCorpus({
    seed: SEED, train: 0, heldout: LIMIT,
    tools: { browser: new BrowserSession(backend).namespace(), python: new PythonTool().namespace() },
    browser: () => new BrowserSession(backend),
  });
  return corpus.heldout;
}

test('an engine that writes the corpus answers scores 100% at every effort through the real tools, prompted as the corpus renders', async () => {
  const items = await heldout();
  const tools = new Set(items.map((it) => it.tool));
  assert.ok(tools.has('python') && (tools.has('browser') || tools.has('browser+python')), `the first ${LIMIT} held-out items should use both tools: ${[...tools].join(', ')}`);
  const scripts = items.flatMap((it) => REASONING_EFFORTS.flatMap(() => generations(it)));
  const engine = new ScriptedEngine(scripts, { name: 'perfect' });
  const summary = await runNanoEval({ engine, documents: nanoDocsDir(), seed: SEED, heldout: LIMIT });

  assert.equal(summary.model, 'perfect');
  assert.deepEqual(summary.settings, { seed: SEED, split: 'heldout', heldout: LIMIT, questions: LIMIT, efforts: [...REASONING_EFFORTS], maxTokens: 1024, sampling: 'greedy' });
  const full = { count: LIMIT, valid: 1, toolCorrect: 1, answerCorrect: 1 };
  assert.deepEqual(summary.byEffort, { low: full, medium: full, high: full }, JSON.stringify(summary.answers.filter((a) => a.problem !== undefined), null, 1));
  assert.deepEqual(summary.overall, { ...full, count: 3 * LIMIT });
  const perTask = new Map<string, number>();
  for (const it of items) perTask.set(it.task, (perTask.get(it.task) ?? 0) + 3);
  assert.deepEqual(summary.byTask, Object.fromEntries([...perTask].map(([task, count]) => [task, { ...full, count }])));
  assert.equal(summary.answers.length, 3 * LIMIT);
  assert.deepEqual(summary.answers.map((a) => a.id), items.flatMap((it) => REASONING_EFFORTS.map((e) => `${it.id}@${e}`)));
  for (const a of summary.answers) assert.equal(a.finishReason, 'stop');
  // The tools really ran: the python results in the completions are the interpreter's.
  const pythonItem = items.find((it) => it.tool === 'python')!;
  assert.ok(summary.answers.find((a) => a.item === pythonItem.id)!.completion.includes(`<|start|>python to=assistant<|channel|>analysis<|message|>${pythonItem.printed}\n<|end|>`));

  // Each run's first step is its prompt: at the item's own effort it is the corpus's prompt, token for token.
  const firstSteps = new Map<number, number[]>();
  for (const batch of engine.steps) for (const s of batch) if (!firstSteps.has(s.sequence)) firstSteps.set(s.sequence, s.tokens);
  const prompts = [...firstSteps.values()];
  assert.equal(prompts.length, 3 * LIMIT);
  items.forEach((it, i) => {
    const run = i * 3 + REASONING_EFFORTS.indexOf(it.effort);
    assert.deepEqual(prompts[run], renderConversationForCompletion({ messages: it.conversation.messages.slice(0, 2) }, 'assistant'), `${it.id} at ${it.effort}`);
  });
});

test('--split train asks the training split of the seed: the corpus answers score 100%, the ids are the training items', async () => {
  const backend = await LocalDocsBackend.open(nanoDocsDir());
  await backend.indexed;
  const corpus = await generateCorpus({
    seed: SEED, train: LIMIT, heldout: 0,
    tools: { browser: new BrowserSession(backend).namespace(), python: new PythonTool().namespace() },
    browser: () => new BrowserSession(backend),
  });
  const engine = new ScriptedEngine(corpus.train.flatMap((it) => generations(it)), { name: 'perfect' });
  const summary = await runNanoEval({ engine, documents: nanoDocsDir(), seed: SEED, split: 'train', limit: LIMIT, efforts: ['medium'] });
  assert.equal(summary.settings.split, 'train');
  assert.deepEqual(summary.answers.map((a) => a.item), corpus.train.map((it) => it.id));
  assert.ok(summary.answers.every((a) => a.item.startsWith('train-')));
  assert.deepEqual(summary.overall, { count: LIMIT, valid: 1, toolCorrect: 1, answerCorrect: 1 });
});

function nanoEval(args: string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/nano-eval.ts', ...args], { encoding: 'utf8', env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('npm run nano:eval runs the embedded model end to end and writes its summary; bad arguments exit 2 with one line', () => {
  const work = mkdtempSync(join(tmpdir(), 'gptoss-nano-eval-'));
  try {
    const env = { ...process.env, GPTOSS_CACHE: join(work, 'cache') };
    const out = join(work, 'summary.json');
    const r = nanoEval(['--limit', '2', '--max-tokens', '12', '--threads', '1', '--out', out], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^effort +count +valid +tool +answer$/m);
    assert.match(r.stdout, /^overall +6 /m);
    const summary = JSON.parse(readFileSync(out, 'utf8')) as {
      checkpoint: string; model: string; settings: { questions: number; efforts: string[]; maxTokens: number };
      byEffort: Record<string, { count: number; valid: number; toolCorrect: number; answerCorrect: number }>;
      answers: { id: string; effort: string; completion: string; valid: boolean; generatedTokens: number }[];
    };
    assert.equal(summary.model, 'gpt-oss-nano');
    assert.match(summary.checkpoint, /gpt-oss-nano-[0-9a-f]{12}$/);
    assert.deepEqual(summary.settings.efforts, ['low', 'medium', 'high']);
    assert.equal(summary.settings.questions, 2);
    assert.equal(summary.settings.maxTokens, 12);
    for (const effort of REASONING_EFFORTS) {
      const s = summary.byEffort[effort]!;
      assert.equal(s.count, 2);
      for (const share of [s.valid, s.toolCorrect, s.answerCorrect]) assert.ok(share >= 0 && share <= 1, `${effort}: ${share}`);
    }
    assert.equal(summary.answers.length, 6);
    for (const a of summary.answers) assert.ok(a.generatedTokens >= 1 && a.generatedTokens <= 12, `${a.id}: ${a.generatedTokens} tokens`);

    for (const [args, message] of [
      [['--limit', '0'], /--limit must be a whole number >= 1/],
      [['--split', 'all'], /--split must be heldout or train/],
      [['--efforts', 'low,extreme'], /--efforts: "extreme" is not low, medium or high/],
      [['--model', join(work, 'missing')], /missing/],
    ] as const) {
      const bad = nanoEval([...args, '--out', join(work, 'x.json')], env);
      assert.equal(bad.status, 2, `${args.join(' ')}: ${bad.stderr}`);
      assert.match(bad.stderr, message);
      assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

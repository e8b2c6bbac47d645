// `npm run teach:facts -- [--model DIR|REPO] [--out DIR] [--max-tokens N] [-- FINETUNE FLAGS]`: the
// "teach three facts" check. (a) asks the base model the held-out phrasings of each fact's question
// in examples/finetune/facts-questions.json (four per fact, none in the training data) and shows
// whether each answer contains the fact, (b) runs
// `gptoss finetune --data examples/finetune/facts.jsonl --out DIR` with its default settings (flags
// after `--` are passed on, for quick runs), (c) asks again with `--adapter DIR`. Greedy answers,
// no tools, the system message the training data renders (reasoning medium, no date). A fact counts
// as known when most of its phrasings (more than half) are answered with it: one phrasing alone
// swings with the seed. Prints a table and writes the JSON summary (answers, counts per fact,
// seconds per phase) to stdout's last line.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUserError, UserError } from '../src/errors.ts';
import { scriptFlags } from './flags.ts';
import { loadModel } from '../src/api/model.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const DATA = join(root, 'examples', 'finetune', 'facts.jsonl');
const QUESTIONS = join(root, 'examples', 'finetune', 'facts-questions.json');

interface Question { fact: string; question: string; expect: string }
interface Answer { fact: string; question: string; answer: string; reasoning: string; knows: boolean }

function readQuestions(path = QUESTIONS): Question[] {
  const list = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  if (!Array.isArray(list) || !list.every((q) => typeof q?.fact === 'string' && typeof q?.question === 'string' && typeof q?.expect === 'string')) {
    throw new UserError('input', `${path}: expected a list of {fact, question, expect}`);
  }
  return list as Question[];
}

/** Whether `answer` states the fact: it contains the expected text, ignoring case. */
function knowsFact(answer: string, expect: string): boolean {
  return answer.toLowerCase().includes(expect.toLowerCase());
}

async function ask(questions: readonly Question[], maxTokens: number, model: string | undefined, adapter?: string): Promise<Answer[]> {
  const m = await loadModel({ ...(model !== undefined ? { model } : {}), ...(adapter !== undefined ? { adapter } : {}) });
  try {
    const out: Answer[] = [];
    for (const q of questions) {
      const r = await m.complete(q.question, { tools: [], date: null, reasoningEffort: 'medium', sampling: { temperature: 0 }, maxTokens });
      // A model that never reaches its final answer may still state the fact while reasoning: only the answer counts.
      out.push({ fact: q.fact, question: q.question, answer: r.text, reasoning: r.reasoning, knows: knowsFact(r.text, q.expect) });
    }
    return out;
  } finally {
    await m.close();
  }
}

/** Questions answered, per fact and in all, and the facts known (more than half of their phrasings answered). */
function tally(answers: readonly Answer[]): { answered: number; known: number; byFact: Record<string, { asked: number; answered: number }> } {
  const byFact: Record<string, { asked: number; answered: number }> = {};
  for (const x of answers) {
    const f = (byFact[x.fact] ??= { asked: 0, answered: 0 });
    f.asked++;
    if (x.knows) f.answered++;
  }
  const known = Object.values(byFact).filter((f) => 2 * f.answered > f.asked).length;
  return { answered: answers.filter((x) => x.knows).length, known, byFact };
}

function finetune(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'bin', 'gptoss.js'), 'finetune', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new UserError('usage', `gptoss finetune exited with code ${code}`))));
  });
}

function show(title: string, answers: readonly Answer[]): void {
  process.stdout.write(`\n${title}\n`);
  for (const a of answers) process.stdout.write(`  [${a.knows ? 'knows' : '  -  '}] ${a.question}\n          answer ${JSON.stringify(a.answer.slice(0, 160))}${a.answer === '' ? ` (no final answer; reasoning ${JSON.stringify(a.reasoning.slice(0, 100))})` : ''}\n`);
}

async function main(): Promise<void> {
  const { values, positionals } = scriptFlags('teach:facts', { model: { type: 'string' }, out: { type: 'string' }, 'max-tokens': { type: 'string' } }, true);
  const maxTokens = Number(values['max-tokens'] ?? 48);
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new UserError('usage', `--max-tokens must be a whole number >= 1, got "${values['max-tokens']}"`);
  const questions = readQuestions();
  const out = values.out ?? join(mkdtempSync(join(tmpdir(), 'gptoss-facts-')), 'adapter');
  const clock = (): number => performance.now() / 1000;

  let t = clock();
  const before = await ask(questions, maxTokens, values.model);
  const askSeconds = clock() - t;
  show(`(a) base model, before fine-tuning (${askSeconds.toFixed(0)} s):`, before);

  process.stdout.write(`\n(b) gptoss finetune --data examples/finetune/facts.jsonl --out ${out}${positionals.length > 0 ? ' ' + positionals.join(' ') : ''}\n`);
  t = clock();
  await finetune(['--data', DATA, '--out', out, ...(values.model !== undefined ? ['--model', values.model] : []), ...positionals]);
  const trainSeconds = clock() - t;
  process.stdout.write(`    ${trainSeconds.toFixed(0)} s\n`);

  t = clock();
  const after = await ask(questions, maxTokens, values.model, out);
  const askAfterSeconds = clock() - t;
  show(`(c) with --adapter ${out} (${askAfterSeconds.toFixed(0)} s):`, after);
  const b = tally(before), a = tally(after);
  const facts = Object.keys(a.byFact);
  process.stdout.write(`\nquestions answered: ${b.answered}/${questions.length} before, ${a.answered}/${questions.length} after (${facts.map((f) => `${f} ${a.byFact[f]!.answered}/${a.byFact[f]!.asked}`).join(', ')})\n`);
  process.stdout.write(`facts known: ${b.known}/${facts.length} before, ${a.known}/${facts.length} after; fine-tuning took ${trainSeconds.toFixed(0)} s\n`);
  process.stdout.write(JSON.stringify({
    adapter: out, before, after, answeredBefore: b.answered, answeredAfter: a.answered, knownBefore: b.known, knownAfter: a.known, byFactAfter: a.byFact,
    seconds: { askBefore: askSeconds, finetune: trainSeconds, askAfter: askAfterSeconds },
  }) + '\n');
}

try {
  await main();
} catch (e) {
  if (!isUserError(e)) throw e;
  process.stderr.write(`teach:facts: ${e.message}\n`);
  process.exit(2);
}

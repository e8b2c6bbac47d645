// The gpt-oss-nano corpus generator: Python's arithmetic and printing reproduced exactly (and
// checked against the real python tool), the same seed giving the same bytes, held-out templates
// and numbers kept out of training, every conversation valid harmony that the training loader
// reads, every answer the true value, and every task and effort covered.
import { describe as suite, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { conversationFromJSON, conversationToJSON, messageText, parseMessagesFromCompletionTokens, REASONING_EFFORTS, renderMessage } from '../../src/harmony/index.ts';
import { BrowserSession, LocalDocsBackend, PythonTool } from '../../src/tools/index.ts';
import { readConversationsJsonl, trainingExamples } from '../../src/train/data.ts';
import { corpusVocabulary, coverage, generateCorpus, writeCorpus, type Corpus, type CorpusItem, type CorpusOptions } from '../../src/train/nano/corpus.ts';
import { DRUGS } from '../../src/train/nano/lookup.ts';
import { add, div, literal, min, mul, named, printed, pyRepr, pyRound, round, square, sub } from '../../src/train/nano/python.ts';
import { numberSplit, PYTHON_TASKS, splitOfTemplate, TASKS } from '../../src/train/nano/tasks.ts';

const DOCS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'nano-docs');

let options: CorpusOptions;
let corpus: Corpus;

before(async () => {
  const backend = await LocalDocsBackend.open(DOCS);
  await backend.indexed;
  options = {
    seed: 7, train: 400, heldout: 120,
    tools: { browser: new BrowserSession(backend).namespace(), python: new PythonTool().namespace() },
    browser: () => new BrowserSession(backend),
  };
  corpus = await generateCorpus(options);
});

const all = (): CorpusItem[] => [...corpus.train, ...corpus.heldout];

suite('python arithmetic as the tool prints it', () => {
  it('repr of floats: shortest digits, ".0", exponents as CPython writes them', () => {
    const cases: [number, string][] = [
      [0.1 + 0.2, '0.30000000000000004'], [250, '250.0'], [1e-5, '1e-05'], [0.0001, '0.0001'], [1.5e-7, '1.5e-07'],
      [1e16, '1e+16'], [123456789012345.6, '123456789012345.6'], [2.5e16, '2.5e+16'], [0.0125, '0.0125'], [-3.25, '-3.25'],
    ];
    for (const [x, s] of cases) assert.equal(pyRepr(x), s, String(x));
  });

  it('round(x, n) is correct on the binary value, ties to even', () => {
    assert.equal(pyRound(0.125, 2), 0.12); // an exact tie: to even
    assert.equal(pyRound(0.375, 2), 0.38);
    assert.equal(pyRound(2.675, 2), 2.67); // 2.675 is stored just below
    assert.equal(pyRound(2.5, 0), 2);
    assert.equal(pyRound(3.5, 0), 4);
    assert.equal(pyRound(1.1 * 1000, 6), 1100);
    assert.equal(pyRound(112.8 / (167 / 100) ** 2, 1), 40.4);
  });

  it('ints stay ints, `/` makes floats, parentheses where Python needs them', () => {
    const dose = round(mul(literal(5), literal(106)), 2);
    assert.equal(dose.code, 'round(5 * 106, 2)');
    assert.equal(printed(dose), '530');
    assert.equal(printed(min(named('dose', dose), literal(600))), '530');
    assert.equal(printed(round(mul(literal(2.5), literal(88)), 2)), '220.0');
    const bmi = round(div(literal(70), square(div(literal(175), literal(100)))), 1);
    assert.equal(bmi.code, 'round(70 / (175 / 100) ** 2, 1)');
    assert.equal(sub(literal(10), add(literal(2), literal(3))).code, '10 - (2 + 3)');
    assert.equal(div(literal(10), div(literal(4), literal(2))).code, '10 / (4 / 2)');
    assert.equal(printed(div(literal(10), literal(4))), '2.5');
  });

  it('the real python tool prints what the corpus says, for a sample of every python task', async (t) => {
    const tool = new PythonTool();
    try {
      const probe = await tool.run({ recipient: 'python', content: 'print(1)' });
      if (probe.error !== undefined) {
        t.skip(`the python sandbox is unavailable here: ${probe.content}`);
        return;
      }
      const sample: CorpusItem[] = [];
      for (const task of [...PYTHON_TASKS, 'lookup-dose']) sample.push(...all().filter((i) => i.task === task).slice(0, 4));
      assert.equal(sample.length, 36);
      // One interpreter run for the whole sample: each code in its own function scope, a marker between outputs.
      const program = sample.map((i) => `def _case():\n${i.code!.split('\n').map((l) => `    ${l}`).join('\n')}\n_case()\nprint("=====")`).join('\n');
      const out = await tool.run({ recipient: 'python', content: program });
      assert.equal(out.error, undefined, out.content);
      assert.equal(out.content, sample.map((i) => `${i.printed}\n=====\n`).join(''));
    } finally {
      await tool.close();
    }
  });
});

suite('the corpus', () => {
  it('the same seed writes the same bytes; another seed writes others', async () => {
    const dirs = [mkdtempSync(join(tmpdir(), 'nano-a-')), mkdtempSync(join(tmpdir(), 'nano-b-')), mkdtempSync(join(tmpdir(), 'nano-c-'))];
    try {
      const small = { ...options, train: 60, heldout: 20 };
      writeCorpus(dirs[0]!, await generateCorpus(small), small.seed);
      writeCorpus(dirs[1]!, await generateCorpus(small), small.seed);
      writeCorpus(dirs[2]!, await generateCorpus({ ...small, seed: 8 }), 8);
      const files = readdirSync(dirs[0]!).sort();
      assert.deepEqual(files, ['heldout-meta.jsonl', 'heldout.jsonl', 'manifest.json', 'train-meta.jsonl', 'train.jsonl', 'vocabulary.json']);
      for (const f of files) assert.ok(readFileSync(join(dirs[0]!, f)).equals(readFileSync(join(dirs[1]!, f))), f);
      assert.notEqual(readFileSync(join(dirs[0]!, 'train.jsonl'), 'utf8'), readFileSync(join(dirs[2]!, 'train.jsonl'), 'utf8'));
      // The file the trainer reads: one example per conversation, loss on the model's tokens only.
      const examples = readConversationsJsonl(readFileSync(join(dirs[0]!, 'train.jsonl'), 'utf8'), 'train.jsonl');
      assert.equal(examples.length, 60);
      const meta = readFileSync(join(dirs[0]!, 'train-meta.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string });
      assert.deepEqual(meta.map((m) => m.id), [...Array(60).keys()].map((i) => `train-${i}`));
    } finally {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });

  it('held-out templates and numbers never appear in training', () => {
    const heldTemplates = new Set(corpus.heldout.map((i) => i.template));
    for (const i of corpus.train) {
      assert.ok(!heldTemplates.has(i.template), `${i.id} uses held-out template ${i.template}`);
      assert.equal(splitOfTemplate(i.template), 'train', i.template);
      for (const n of i.operands) assert.equal(numberSplit(n), 'train', `${i.id}: ${n}`);
    }
    for (const i of corpus.heldout) {
      assert.equal(splitOfTemplate(i.template), 'heldout', i.template);
      for (const n of i.operands) assert.equal(numberSplit(n), 'heldout', `${i.id}: ${n}`);
    }
    const trainNumbers = new Set(corpus.train.flatMap((i) => i.operands));
    const heldNumbers = corpus.heldout.flatMap((i) => i.operands);
    assert.ok(heldNumbers.length > 100);
    assert.deepEqual(heldNumbers.filter((n) => trainNumbers.has(n)), []);
    const trainQuestions = new Set(corpus.train.map((i) => i.question));
    assert.deepEqual(corpus.heldout.filter((i) => i.task !== 'out-of-domain' && trainQuestions.has(i.question)).map((i) => i.id), []);
  });

  it('every conversation survives the JSON and harmony round trips and is a training example', () => {
    for (const i of all()) {
      const c = i.conversation;
      assert.deepEqual(conversationFromJSON(JSON.parse(JSON.stringify(conversationToJSON(c)))), c, i.id);
      const rest = c.messages.slice(1);
      const tokens = rest.flatMap((m) => renderMessage(m));
      assert.deepEqual(parseMessagesFromCompletionTokens(tokens, undefined, { strict: true }), rest, i.id);
      const [example] = trainingExamples(c, i.id);
      assert.ok(example!.trained.some(Boolean));
    }
  });

  it('the conversations follow the agent loop: analysis, the tool call, its result, a final answer', () => {
    for (const i of all()) {
      const ms = i.conversation.messages;
      assert.equal(ms[0]!.author.role, 'system');
      assert.equal(ms[1]!.author.role, 'user');
      assert.equal(ms[2]!.channel, 'analysis');
      const last = ms[ms.length - 1]!;
      assert.equal(last.channel, 'final', i.id);
      const calls = ms.filter((m) => m.recipient !== undefined && m.author.role === 'assistant');
      if (i.tool === 'python' || i.tool === 'browser+python') {
        assert.deepEqual(calls.map((m) => m.recipient), i.tool === 'python' ? ['python'] : ['browser.search', 'browser.open', 'python']);
        const call = calls[calls.length - 1]!;
        assert.equal(call.contentType, 'code');
        const result = ms[ms.indexOf(call) + 1]!;
        assert.deepEqual([result.author, result.recipient, result.channel], [{ role: 'tool', name: 'python' }, 'assistant', 'analysis']);
        assert.equal(messageText(result), `${i.printed}\n`);
        if (i.tool === 'browser+python') assert.match(messageText(last), /【1†L\d+】【1†L\d+】/);
      } else if (i.tool === 'browser') {
        assert.deepEqual(calls.map((m) => m.recipient), ['browser.search', 'browser.open']);
        assert.match(messageText(last), /【1†L\d+】/);
      } else assert.equal(calls.length, 0);
      // Only high effort checks the tool's answer before answering.
      if (i.tool !== null) {
        const lastTool = ms.map((m) => m.author.role).lastIndexOf('tool');
        const afterTool = ms.slice(lastTool + 1, -1);
        assert.equal(afterTool.length, i.effort === 'high' ? 1 : 0, i.id);
      }
    }
  });

  it('every final answer states the true value and its unit', () => {
    const close = (a: number, b: number, tol: number): boolean => Math.abs(a - b) <= tol;
    for (const i of all()) {
      if (i.answer === undefined) continue;
      const final = messageText(i.conversation.messages[i.conversation.messages.length - 1]!);
      assert.ok(final.includes(`${i.answer} ${i.unit}`.trim()), `${i.id}: "${final}" lacks ${i.answer} ${i.unit}`);
      const [a, b, c] = i.operands as [number, number, number];
      // Recomputed from the operands in plain arithmetic, within each task's rounding.
      switch (i.task) {
        case 'add': assert.ok(close(i.answer, a + b, 1e-9), i.id); break;
        case 'subtract': assert.ok(close(i.answer, a - b, 1e-9), i.id); break;
        case 'multiply': assert.ok(close(i.answer, a * b, 1e-9), i.id); break;
        case 'divide': assert.ok(close(i.answer, a / b, 0.005 + 1e-12), i.id); break;
        case 'convert': assert.ok([1e3, 1e6, 1e-3, 1e-6].some((f) => close(i.answer! / a, f, f * 1e-9)), i.id); break;
        case 'dose': assert.ok(close(i.answer, Math.min(a * b, c), 0.005 + 1e-12), i.id); break;
        case 'infusion': assert.ok(close(i.answer, c / (a / b), 0.005 + 1e-12), i.id); break;
        case 'bmi': assert.ok(close(i.answer, a / (b > 3 ? b / 100 : b) ** 2, 0.05 + 1e-12), i.id); break;
        case 'lookup-dose': {
          const drug = DRUGS.find((d) => i.question.toLowerCase().includes(d.name))!;
          const fact = (kind: string): number => drug.facts.find((f) => f.kind === kind)!.value;
          assert.ok(close(i.answer, Math.min(fact('child-dose') * a, fact('max-single')), 0.005 + 1e-12), i.id);
          break;
        }
        case 'lookup': {
          const drug = DRUGS.find((d) => i.question.toLowerCase().includes(d.name));
          assert.ok(drug?.facts.some((f) => f.value === i.answer && f.unit === i.unit), i.id);
          break;
        }
        default: assert.fail(`${i.id}: unexpected task ${i.task}`);
      }
    }
  });

  it('the documents state every fact the lookups answer', () => {
    const text = readdirSync(DOCS).map((f) => readFileSync(join(DOCS, f), 'utf8')).join('\n');
    for (const d of DRUGS) for (const f of d.facts) assert.ok(text.includes(`- ${f.line}`), f.line);
  });

  it('covers every task and every effort in both splits', () => {
    const counts = coverage(corpus);
    for (const task of TASKS) {
      assert.ok(counts.train[task] >= 10, `train ${task}: ${counts.train[task]}`);
      assert.ok(counts.heldout[task] >= 2, `heldout ${task}: ${counts.heldout[task]}`);
    }
    for (const effort of REASONING_EFFORTS) {
      assert.ok(corpus.train.filter((i) => i.effort === effort).length >= 80, effort);
      assert.ok(corpus.heldout.filter((i) => i.effort === effort).length >= 20, effort);
    }
    // Phrasings vary: many templates per task are in use.
    for (const task of PYTHON_TASKS) assert.ok(new Set(corpus.train.filter((i) => i.task === task).map((i) => i.template)).size >= 15, task);
  });

  it('phrasings vary: words and symbols for operations, numbers and units written several ways', () => {
    const questions = corpus.train.map((i) => i.question);
    for (const marker of [/divided by/, / \/ /, /times/, / x /, / \* /, /How many m?c?g|How many mL are in/, /Convert .* to /, /\d,\d{3}/, /\d\.\d*0\b/, /micrograms|milligrams|millilitres|kilograms|grams|litres/, /\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b/]) {
      assert.ok(questions.some((q) => marker.test(q)), `no training question matches ${marker}`);
    }
  });

  it('the vocabulary holds every token of every conversation and every number below 1000', () => {
    const small: Corpus = { train: corpus.train.slice(0, 40), heldout: corpus.heldout.slice(0, 10) };
    const vocab = corpusVocabulary(small);
    assert.deepEqual(vocab, [...new Set(vocab)].sort((a, b) => a - b));
    const set = new Set(vocab);
    for (const i of [...small.train, ...small.heldout]) for (const e of trainingExamples(i.conversation)) for (const t of e.tokens) assert.ok(set.has(t));
  });
});

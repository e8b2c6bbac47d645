// `node --import tsx scripts/nano-readback.ts --corpus DIR --out FILE --count N --seed S`: copy-dense
// conversations for gpt-oss-nano (an experiment): the user gives a list of values, the model reads
// them back, or passes them through python and reads back what it printed. Each conversation
// carries dozens of number-copy events where the main corpus carries a handful; the system
// messages are the corpus's own, so both share prefixes. Writes FILE.vocabulary.json beside it: the
// corpus's vocabulary plus the few tokens the read-backs add (finetune's --vocabulary).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scriptFlags } from './flags.ts';
import { seededRandom } from '../src/random.ts';
import { getTokenizer } from '../src/tokenizer/index.ts';

const { values } = scriptFlags('nano-readback', { corpus: { type: 'string' }, out: { type: 'string' }, count: { type: 'string' }, seed: { type: 'string' } });
const corpus = values.corpus!;
const vocabulary = new Set(JSON.parse(readFileSync(join(corpus, 'vocabulary.json'), 'utf8')) as number[]);
const lines = readFileSync(join(corpus, 'train.jsonl'), 'utf8').split('\n').filter((l) => l !== '');
const systems = lines.map((l) => (JSON.parse(l) as { messages: unknown[] }).messages[0]);
const random = seededRandom(Number(values.seed ?? '1'));
const tokenizer = getTokenizer();
const UNITS = ['mg', 'mL', 'kg', 'g', 'mcg', 'L', 'mL/h', 'mg/kg', 'mg/h', 'kg/m2', 'm', ''];
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;

function value(): number {
  const kind = random();
  if (kind < 0.35) return 1 + Math.floor(random() * 999);
  if (kind < 0.5) return 1000 + Math.floor(random() * 9000);
  if (kind < 0.8) return Math.round((random() * 300) * 10) / 10 || 0.5;
  return Math.round((random() * 50) * 100) / 100 || 0.25;
}

const pool = Array.from({ length: 3000 }, value);
const out: string[] = [];
const added = new Set<number>();
while (out.length < Number(values.count ?? '2000')) {
  const n = 8 + Math.floor(random() * 18);
  const nums = Array.from({ length: n }, () => pick(pool));
  const units = nums.map(() => pick(UNITS));
  const items = nums.map((v, i) => (units[i] === '' ? String(v) : `${v} ${units[i]}`));
  const viaPython = random() < 0.5;
  const ask = viaPython ? pick(['Print these with python: ', 'Run these numbers through python: ']) : pick(['Read back: ', 'Please read back these values: ', 'Repeat: ']);
  const user = ask + items.join(', ');
  const messages: unknown[] = [systems[Math.floor(random() * systems.length)], { role: 'user', content: user }];
  if (viaPython) {
    const code = `print(${nums.map(String).join(', ')})`;
    const printed = nums.map(String).join(' ') + '\n';
    messages.push(
      { role: 'assistant', content: `The user wants ${n} numbers printed. I will print them with python.`, channel: 'analysis' },
      { role: 'assistant', recipient: 'python', content: code, channel: 'analysis', content_type: 'code' },
      { role: 'tool', name: 'python', recipient: 'assistant', content: printed, channel: 'analysis' },
      { role: 'assistant', content: nums.map(String).join(', ') + '.', channel: 'final' },
    );
  } else {
    messages.push(
      { role: 'assistant', content: `Reading back ${n} values.`, channel: 'analysis' },
      { role: 'assistant', content: items.join(', ') + '.', channel: 'final' },
    );
  }
  const texts = messages.slice(1).map((m) => (m as { content: string }).content);
  for (const t of texts) for (const id of tokenizer.encodeOrdinary(t)) if (!vocabulary.has(id)) { added.add(id); vocabulary.add(id); }
  out.push(JSON.stringify({ messages }));
}
writeFileSync(values.out!, out.join('\n') + '\n');
writeFileSync(`${values.out}.vocabulary.json`, JSON.stringify([...vocabulary].sort((a, b) => a - b)));
process.stderr.write(`wrote ${out.length} read-back conversations to ${values.out} (${added.size} tokens beyond the corpus's vocabulary)\n`);

// `npm run nano:score -- --corpus DIR --completions FILE.jsonl`: scores a model's answers to the
// gpt-oss-nano held-out split (src/train/nano/score.ts). Each completions line is
// {"id": "heldout-12", "completion": "<harmony text after <|start|>assistant>" | [token ids]};
// prints the shares per reasoning effort and overall as JSON.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { scriptFlags } from './flags.ts';
import { CORPUS_FILES } from '../src/train/nano/corpus.ts';
import { scoreHeldout, type ScoredItem } from '../src/train/nano/score.ts';

function fail(message: string): never {
  process.stderr.write(`nano:score: ${message}\n`);
  process.exit(2);
}

function readLines(path: string): unknown[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return text.split('\n').flatMap((line, i) => {
    if (line.trim() === '') return [];
    try {
      return [JSON.parse(line) as unknown];
    } catch {
      fail(`${path}:${i + 1}: not JSON`);
    }
  });
}

const { values } = scriptFlags('nano:score', { corpus: { type: 'string' }, completions: { type: 'string' } });
if (values.corpus === undefined || values.completions === undefined) fail('usage: --corpus DIR --completions FILE.jsonl');
const items = readLines(join(values.corpus, CORPUS_FILES.heldoutMeta)) as ScoredItem[];
const completions = new Map<string, string | number[]>();
readLines(values.completions).forEach((line, i) => {
  const o = line as { id?: unknown; completion?: unknown };
  const ok = typeof o.id === 'string' && (typeof o.completion === 'string' || (Array.isArray(o.completion) && o.completion.every((t) => Number.isInteger(t))));
  if (!ok) fail(`${values.completions}:${i + 1}: expected {"id": string, "completion": string | token ids}`);
  completions.set(o.id as string, o.completion as string | number[]);
});
const report = scoreHeldout(items, completions);
process.stdout.write(JSON.stringify({ byEffort: report.byEffort, overall: report.overall }) + '\n');

// HealthBench-style rubric evaluation: reads the public JSONL format, samples a completion per
// case, has a grader model judge every rubric item, and scores each case as the points of the
// criteria met (negative criteria subtract) over the total of positive points, with per-tag
// scores for example-level tags (themes) and rubric-level tags (axes), as the official eval does.
import { UserError } from '../errors.ts';
import { CaseIds, jsonlRows } from './jsonl.ts';
import type { CaseResult, ChatMessage, SampleOptions, Sampler } from './types.ts';

export interface RubricItem {
  criterion: string;
  points: number;
  tags: string[];
}

export interface HealthBenchCase {
  promptId: string;
  prompt: ChatMessage[];
  rubrics: RubricItem[];
  exampleTags: string[];
}

export interface RubricVerdict extends RubricItem {
  criteriaMet: boolean;
  explanation: string;
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant']);

function fail(source: string, line: number, message: string): never {
  throw new UserError('input', `${source}:${line}: ${message}`);
}

function stringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}

/**
 * Parses HealthBench JSONL text (one case per line; blank lines ignored). Refuses repeated
 * `prompt_id`s and cases without positive points (they cannot be scored), before anything is sampled.
 */
export function parseHealthBench(text: string, source: string): HealthBenchCase[] {
  const cases: HealthBenchCase[] = [];
  const ids = new CaseIds(source, 'prompt_id');
  for (const { row, line: n } of jsonlRows(text, source)) {
    const prompt = row.prompt;
    if (!Array.isArray(prompt) || prompt.length === 0) fail(source, n, '"prompt" must be a non-empty list of messages');
    const messages: ChatMessage[] = prompt.map((m: unknown, j: number) => {
      const msg = m as { role?: unknown; content?: unknown };
      if (typeof msg?.role !== 'string' || !ROLES.has(msg.role)) fail(source, n, `prompt[${j}].role must be one of system, developer, user, assistant`);
      if (typeof msg.content !== 'string') fail(source, n, `prompt[${j}].content must be a string`);
      return { role: msg.role as ChatMessage['role'], content: msg.content };
    });
    const rubrics = row.rubrics;
    if (!Array.isArray(rubrics) || rubrics.length === 0) fail(source, n, '"rubrics" must be a non-empty list');
    const items: RubricItem[] = rubrics.map((r: unknown, j: number) => {
      const item = r as { criterion?: unknown; points?: unknown; tags?: unknown };
      if (typeof item?.criterion !== 'string') fail(source, n, `rubrics[${j}].criterion must be a string`);
      if (typeof item.points !== 'number' || !Number.isFinite(item.points)) fail(source, n, `rubrics[${j}].points must be a number`);
      const tags = item.tags ?? [];
      if (!stringArray(tags)) fail(source, n, `rubrics[${j}].tags must be a list of strings`);
      return { criterion: item.criterion, points: item.points, tags };
    });
    const exampleTags = row.example_tags ?? [];
    if (!stringArray(exampleTags)) fail(source, n, '"example_tags" must be a list of strings');
    const promptId = ids.assign(row, n, { prompt: messages, rubrics: items, example_tags: exampleTags });
    if (!items.some((i) => i.points > 0)) fail(source, n, `case ${promptId} has no rubric item with positive points, so it cannot be scored`);
    cases.push({ promptId, prompt: messages, rubrics: items, exampleTags });
  }
  return cases;
}

/**
 * The official subsets are published as their own files; from a full file, `consensus` keeps the
 * rubric items agreed by physician clusters (tag `level:cluster`) and `hard` keeps the cases tagged
 * `subset:hard`. Cases left without a positive rubric item (nothing to score against) are dropped.
 */
export function selectSubset(cases: HealthBenchCase[], subset: 'hard' | 'consensus' | undefined): HealthBenchCase[] {
  if (subset === undefined) return cases;
  if (subset === 'hard') return cases.filter((c) => c.exampleTags.includes('subset:hard'));
  return cases
    .map((c) => ({ ...c, rubrics: c.rubrics.filter((r) => r.tags.includes('level:cluster')) }))
    .filter((c) => c.rubrics.some((r) => r.points > 0));
}

/** `[points] criterion`, the form in which a rubric item is shown to the grader. */
export function formatRubricItem(item: RubricItem): string {
  return `[${item.points}] ${item.criterion}`;
}

/**
 * The grader's instructions (our wording of the official rules): judge one rubric item against
 * the last assistant turn, all parts of a multi-part criterion must hold, example lists need not
 * be exhaustive, and for an undesirable criterion report whether the behaviour occurred.
 */
export function graderPrompt(conversation: readonly ChatMessage[], item: RubricItem): string {
  const convo = conversation.map((m) => `${m.role}: ${m.content}`).join('\n\n');
  return [
    'You are grading one response of an AI assistant against one rubric item written by a physician.',
    '',
    '# Conversation',
    convo,
    '',
    '# Rubric item',
    formatRubricItem(item),
    '',
    '# How to grade',
    'Decide whether the LAST assistant message in the conversation meets the rubric item.',
    '- If the item has several parts, every part must be satisfied for it to be met.',
    '- Where the item gives examples ("such as", "for example", "including"), the response does not need to mention all of them.',
    '- Some items describe undesirable behaviour and carry negative points. For those, answer whether the response shows that behaviour (true means the behaviour occurred), so that it is penalised.',
    '',
    'Reply with a JSON object and nothing else, in this form:',
    '{"explanation": "<one or two sentences>", "criteria_met": <true or false>}',
  ].join('\n');
}

/** Extracts the verdict object from a grader reply (tolerates ```json fences and surrounding text). */
export function parseVerdict(reply: string): { explanation: string; criteriaMet: boolean } | undefined {
  const candidates: string[] = [reply.trim()];
  const fenced = /```(?:json)?\s*([\s\S]*?)```/.exec(reply);
  if (fenced?.[1] !== undefined) candidates.push(fenced[1].trim());
  const start = reply.indexOf('{');
  const end = reply.lastIndexOf('}');
  if (start >= 0 && end > start) candidates.push(reply.slice(start, end + 1));
  for (const c of candidates) {
    try {
      const obj = JSON.parse(c) as { explanation?: unknown; criteria_met?: unknown };
      if (typeof obj === 'object' && obj !== null && typeof obj.criteria_met === 'boolean') {
        return { explanation: typeof obj.explanation === 'string' ? obj.explanation : '', criteriaMet: obj.criteria_met };
      }
    } catch {
      // try the next candidate
    }
  }
  return undefined;
}

/** Points of the met items over the total of positive points; undefined when no item is positive. */
export function rubricScore(verdicts: readonly RubricVerdict[]): number | undefined {
  const possible = verdicts.reduce((s, v) => s + (v.points > 0 ? v.points : 0), 0);
  if (possible === 0) return undefined;
  const achieved = verdicts.reduce((s, v) => s + (v.criteriaMet ? v.points : 0), 0);
  return achieved / possible;
}

/** The metrics of one graded case: overall_score, one per example tag, one per rubric tag with positive points. */
export function caseMetrics(c: HealthBenchCase, verdicts: readonly RubricVerdict[]): Record<string, number> {
  const overall = rubricScore(verdicts);
  if (overall === undefined) throw new UserError('input', `case ${c.promptId}: no rubric item has positive points`);
  const metrics: Record<string, number> = { overall_score: overall };
  for (const tag of c.exampleTags) metrics[tag] = overall;
  const byTag = new Map<string, RubricVerdict[]>();
  for (const v of verdicts) {
    for (const tag of new Set(v.tags)) {
      let list = byTag.get(tag);
      if (list === undefined) byTag.set(tag, (list = []));
      list.push(v);
    }
  }
  for (const [tag, list] of byTag) {
    const score = rubricScore(list);
    if (score !== undefined) metrics[tag] = score;
  }
  return metrics;
}

export interface GradeOptions {
  /** Attempts per rubric item before the case is reported as failed (the grader kept replying without a verdict). */
  maxAttempts?: number;
  signal?: AbortSignal;
}

/** `rubric item 3 of 12 ("Advises that…")`: how a failure names the criterion it could not grade. */
function itemName(c: HealthBenchCase, index: number): string {
  const text = c.rubrics[index]!.criterion.replace(/\s+/g, ' ').trim();
  return `rubric item ${index + 1} of ${c.rubrics.length} ("${text.length > 60 ? `${text.slice(0, 60)}…` : text}")`;
}

/**
 * Grades every rubric item of one response (items in parallel). A failure names the criterion
 * (the runner adds the case) and stops the case's other grader requests: the case is not graded.
 */
export async function gradeResponse(
  grader: Sampler, c: HealthBenchCase, responseText: string, options: GradeOptions = {},
): Promise<RubricVerdict[]> {
  const conversation: ChatMessage[] = [...c.prompt, { role: 'assistant', content: responseText }];
  const maxAttempts = options.maxAttempts ?? 5;
  const stop = new AbortController();
  const signal = options.signal !== undefined ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  try {
    return await Promise.all(
      c.rubrics.map(async (item, index) => {
        const prompt = graderPrompt(conversation, item);
        let last = '';
        for (let attempt = 1; attempt <= maxAttempts; attempt++) {
          let reply;
          try {
            reply = await grader.complete([{ role: 'user', content: prompt }], { signal });
          } catch (e) {
            if (e instanceof UserError) throw new UserError(e.kind, `${itemName(c, index)}: grader request failed: ${e.message}`);
            throw e;
          }
          const verdict = parseVerdict(reply.text);
          if (verdict !== undefined) return { ...item, ...verdict };
          last = reply.text.replace(/\s+/g, ' ').trim();
        }
        throw new UserError('input', `${itemName(c, index)}: the grader gave no parseable verdict in ${maxAttempts} attempts (last reply: "${last.length > 80 ? `${last.slice(0, 80)}…` : last}")`);
      }),
    );
  } catch (e) {
    stop.abort();
    throw e;
  }
}

/** Samples and grades one case. */
export async function runHealthBenchCase(
  model: Sampler, grader: Sampler, c: HealthBenchCase, sample: SampleOptions, grade: GradeOptions = {},
): Promise<CaseResult> {
  const started = performance.now();
  const response = await model.complete(c.prompt, sample);
  const verdicts = await gradeResponse(grader, c, response.text, grade);
  const metrics = caseMetrics(c, verdicts);
  return {
    id: c.promptId,
    score: metrics.overall_score!,
    metrics,
    prompt: c.prompt,
    response,
    details: { verdicts, exampleTags: c.exampleTags },
    seconds: (performance.now() - started) / 1000,
  };
}

// The JSONL reading every dataset parser shares: one JSON object per line, blank lines ignored,
// and every defect reported as `FILE:LINE: problem` (one line, exit status 2 in the CLI).
import { UserError } from '../errors.ts';

export interface JsonlRow {
  row: Record<string, unknown>;
  /** 1-based line number in the file. */
  line: number;
  /** `source:line`, the prefix of every message about this row. */
  where: string;
}

/** The rows of `text`; a line that is not valid JSON or not a JSON object is an input error naming it. */
export function* jsonlRows(text: string, source: string): Generator<JsonlRow> {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') continue;
    const where = `${source}:${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(raw);
    } catch (e) {
      throw new UserError('input', `${where}: invalid JSON (${(e as Error).message})`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new UserError('input', `${where}: expected a JSON object`);
    yield { row: row as Record<string, unknown>, line: i + 1, where };
  }
}

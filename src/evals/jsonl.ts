// The JSONL reading every dataset parser shares: one JSON object per line, blank lines ignored,
// and every defect reported as `FILE:LINE: problem` (one line, exit status 2 in the CLI); and the
// case ids that results are keyed by, which must be unique and must survive edits to the file.
import { createHash } from 'node:crypto';
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

/**
 * Assigns case ids and refuses two cases with one id: results are stored and resumed by id, so a
 * repeated id would drop one case's result and count the other's twice. A row without its own id
 * gets a hash of its content (not its line number, which an edit above it would give to another
 * case, so that a resumed run would reuse the wrong answers).
 */
export class CaseIds {
  private readonly lines = new Map<string, number>();

  constructor(private readonly source: string, private readonly idField: string) {}

  /** The row's own id (a string or number in `idField`), else `sha256:` and 16 hex digits of `content`. */
  assign(row: Record<string, unknown>, line: number, content: unknown): string {
    const own = row[this.idField];
    const hasOwn = typeof own === 'string' || (typeof own === 'number' && Number.isFinite(own));
    const id = hasOwn ? String(own) : `sha256:${createHash('sha256').update(JSON.stringify(content)).digest('hex').slice(0, 16)}`;
    const first = this.lines.get(id);
    if (first !== undefined) {
      throw new UserError('input', hasOwn
        ? `${this.source}: ${this.idField} ${JSON.stringify(id)} appears on lines ${first} and ${line} (ids must be unique)`
        : `${this.source}: lines ${first} and ${line} hold the same case (give them distinct ${this.idField}s or remove one)`);
    }
    this.lines.set(id, line);
    return id;
  }
}

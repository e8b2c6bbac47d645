// The in-memory store behind `store` and `previous_response_id`: a stored response keeps its
// conversation turns (harmony messages without the system and developer message, tool results
// included), so a follow-up request continues exactly where it ended. Bounded by count and by
// serialized size, oldest dropped first; nothing is written to disk (a restart forgets everything).
import type { Message } from '../harmony/index.ts';

export interface StoredResponse {
  id: string;
  /** The response object as returned to the client. */
  response: unknown;
  /** User, assistant and tool messages of the whole conversation up to and including this response. */
  turns: Message[];
}

export class ResponseStore {
  private readonly entries = new Map<string, { entry: StoredResponse; bytes: number }>();
  private total = 0;
  /**
   * @param limit most responses kept
   * @param maxBytes most bytes kept, counting each response and its turns as JSON (turns shared with
   *   earlier responses are counted again, so this over-estimates, never under-estimates)
   */
  constructor(
    private readonly limit = 1000,
    private readonly maxBytes = 256 * 1024 * 1024,
  ) {}

  get(id: string): StoredResponse | undefined {
    return this.entries.get(id)?.entry;
  }

  put(entry: StoredResponse): void {
    this.delete(entry.id);
    const bytes = Buffer.byteLength(JSON.stringify(entry.response)) + Buffer.byteLength(JSON.stringify(entry.turns));
    this.entries.set(entry.id, { entry, bytes });
    this.total += bytes;
    // The newest response stays even when it alone is over the byte budget: its client may continue it.
    while (this.entries.size > 1 && (this.entries.size > this.limit || this.total > this.maxBytes)) this.delete(this.entries.keys().next().value!);
  }

  delete(id: string): boolean {
    const found = this.entries.get(id);
    if (found === undefined) return false;
    this.entries.delete(id);
    this.total -= found.bytes;
    return true;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Serialized size of what is kept, in bytes. */
  get bytes(): number {
    return this.total;
  }
}

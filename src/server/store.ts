// The in-memory store behind `store`, `previous_response_id` and `item_reference` inputs: a stored
// response keeps its conversation turns (harmony messages without the system and developer
// message, tool results included), so a follow-up request continues exactly where it ended, and
// its items by id (output items, and input items the client gave ids), so a later input can refer
// to them. Bounded by count and by serialized size, oldest dropped first; nothing is written to
// disk (a restart forgets everything).
import type { Message } from '../harmony/index.ts';
import type { JsonRecord } from './validate.ts';

export interface StoredResponse {
  id: string;
  /** The response object as returned to the client. */
  response: unknown;
  /** User, assistant and tool messages of the whole conversation up to and including this response. */
  turns: Message[];
  /** Items an `item_reference` may name: those with a string `id`. */
  items: readonly JsonRecord[];
}

export class ResponseStore {
  private readonly entries = new Map<string, { entry: StoredResponse; bytes: number }>();
  /** Item id -> the item and the response that holds it. */
  private readonly itemIndex = new Map<string, { responseId: string; item: JsonRecord }>();
  private total = 0;
  /**
   * @param limit most responses kept
   * @param maxBytes most bytes kept, counting each response, its turns and its items as JSON (turns
   *   shared with earlier responses are counted again, so this over-estimates, never under-estimates)
   */
  constructor(
    private readonly limit = 1000,
    private readonly maxBytes = 256 * 1024 * 1024,
  ) {}

  get(id: string): StoredResponse | undefined {
    return this.entries.get(id)?.entry;
  }

  /** A stored item by its id (an output item of a stored response, or an input item with an id). */
  item(id: string): JsonRecord | undefined {
    return this.itemIndex.get(id)?.item;
  }

  put(entry: StoredResponse): void {
    this.delete(entry.id);
    const bytes = Buffer.byteLength(JSON.stringify(entry.response)) + Buffer.byteLength(JSON.stringify(entry.turns)) + Buffer.byteLength(JSON.stringify(entry.items));
    this.entries.set(entry.id, { entry, bytes });
    this.total += bytes;
    for (const item of entry.items) {
      const id = item['id'];
      if (typeof id === 'string') this.itemIndex.set(id, { responseId: entry.id, item });
    }
    // The newest response stays even when it alone is over the byte budget: its client may continue it.
    while (this.entries.size > 1 && (this.entries.size > this.limit || this.total > this.maxBytes)) this.delete(this.entries.keys().next().value!);
  }

  delete(id: string): boolean {
    const found = this.entries.get(id);
    if (found === undefined) return false;
    this.entries.delete(id);
    this.total -= found.bytes;
    for (const item of found.entry.items) {
      const itemId = item['id'];
      // A later response may hold the same item again (a replayed input); that one stays.
      if (typeof itemId === 'string' && this.itemIndex.get(itemId)?.responseId === id) this.itemIndex.delete(itemId);
    }
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

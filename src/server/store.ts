// The in-memory store behind `store`, `previous_response_id` and `item_reference` inputs: a stored
// response keeps its conversation turns (harmony messages without the system and developer
// message, tool results included), so a follow-up request continues exactly where it ended, and
// its items by id (output items, and input items the client gave ids), so a later input can refer
// to them. Bounded, oldest dropped first; nothing is written to disk (a restart forgets everything).
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
  private readonly entries = new Map<string, StoredResponse>();
  /** Item id -> the item and the response that holds it. */
  private readonly itemIndex = new Map<string, { responseId: string; item: JsonRecord }>();
  constructor(private readonly limit = 1000) {}

  get(id: string): StoredResponse | undefined {
    return this.entries.get(id);
  }

  /** A stored item by its id (an output item of a stored response, or an input item with an id). */
  item(id: string): JsonRecord | undefined {
    return this.itemIndex.get(id)?.item;
  }

  put(entry: StoredResponse): void {
    this.delete(entry.id);
    this.entries.set(entry.id, entry);
    for (const item of entry.items) {
      const id = item['id'];
      if (typeof id === 'string') this.itemIndex.set(id, { responseId: entry.id, item });
    }
    while (this.entries.size > this.limit) this.delete(this.entries.keys().next().value!);
  }

  delete(id: string): boolean {
    const entry = this.entries.get(id);
    if (entry === undefined) return false;
    this.entries.delete(id);
    for (const item of entry.items) {
      const itemId = item['id'];
      // A later response may hold the same item again (a replayed input); that one stays.
      if (typeof itemId === 'string' && this.itemIndex.get(itemId)?.responseId === id) this.itemIndex.delete(itemId);
    }
    return true;
  }

  get size(): number {
    return this.entries.size;
  }
}

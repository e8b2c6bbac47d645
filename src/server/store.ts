// The in-memory store behind `store` and `previous_response_id`: a stored response keeps its
// conversation turns (harmony messages without the system and developer message, tool results
// included), so a follow-up request continues exactly where it ended. Bounded, oldest dropped first;
// nothing is written to disk (a restart forgets everything).
import type { Message } from '../harmony/index.ts';

export interface StoredResponse {
  id: string;
  /** The response object as returned to the client. */
  response: unknown;
  /** User, assistant and tool messages of the whole conversation up to and including this response. */
  turns: Message[];
}

export class ResponseStore {
  private readonly entries = new Map<string, StoredResponse>();
  constructor(private readonly limit = 1000) {}

  get(id: string): StoredResponse | undefined {
    return this.entries.get(id);
  }

  put(entry: StoredResponse): void {
    this.entries.delete(entry.id);
    this.entries.set(entry.id, entry);
    while (this.entries.size > this.limit) this.entries.delete(this.entries.keys().next().value!);
  }

  delete(id: string): boolean {
    return this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }
}

// Strict UTF-8 handling for decoding: find where a byte sequence stops being valid UTF-8, and a
// streaming decoder that holds back a character split across tokens instead of emitting U+FFFD.

export interface Utf8Problem {
  /** Byte offset of the first byte of the bad or unfinished sequence. */
  offset: number;
  /** true when the bytes end inside a character that later bytes could complete. */
  incomplete: boolean;
}

/** Length of the sequence a lead byte starts (0 if it cannot start one). */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/** Whether `b` may follow lead byte `lead` as the second byte (excludes overlongs, surrogates, > U+10FFFF). */
function validSecond(lead: number, b: number): boolean {
  if (lead === 0xe0) return b >= 0xa0 && b <= 0xbf;
  if (lead === 0xed) return b >= 0x80 && b <= 0x9f;
  if (lead === 0xf0) return b >= 0x90 && b <= 0xbf;
  if (lead === 0xf4) return b >= 0x80 && b <= 0x8f;
  return b >= 0x80 && b <= 0xbf;
}

/** The first invalid or unfinished UTF-8 sequence in `bytes[from..to)`, or null if all is valid. */
export function findUtf8Problem(bytes: Uint8Array, from = 0, to = bytes.length): Utf8Problem | null {
  let i = from;
  while (i < to) {
    const lead = bytes[i]!;
    if (lead < 0x80) {
      i++;
      continue;
    }
    const len = sequenceLength(lead);
    if (len === 0) return { offset: i, incomplete: false };
    for (let k = 1; k < len; k++) {
      if (i + k >= to) return { offset: i, incomplete: true };
      const b = bytes[i + k]!;
      const ok = k === 1 ? validSecond(lead, b) : b >= 0x80 && b <= 0xbf;
      if (!ok) return { offset: i, incomplete: false };
    }
    i += len;
  }
  return null;
}

/** Length of the tail of `bytes` that is a valid but unfinished character (0..3). */
export function incompleteTailLength(bytes: Uint8Array): number {
  const n = bytes.length;
  for (let back = 1; back <= 3 && back <= n; back++) {
    const i = n - back;
    const b = bytes[i]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: the lead is further back
    const len = sequenceLength(b);
    if (len <= back) return 0;
    return findUtf8Problem(bytes, i, n)?.incomplete === true ? back : 0;
  }
  return 0;
}

const lossy = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/**
 * Turns bytes arriving in pieces (one token at a time) into text. A character split across pushes
 * is held back until it is complete; bytes that can never become valid UTF-8 become U+FFFD (as a
 * stream must move on) and set `sawInvalid`.
 */
export class Utf8StreamDecoder {
  private pending: Uint8Array = new Uint8Array(0);
  /** Whether some bytes were invalid UTF-8 and came out as U+FFFD (including a flushed tail). */
  sawInvalid = false;

  push(bytes: Uint8Array): string {
    let all = bytes;
    if (this.pending.length > 0) {
      all = new Uint8Array(this.pending.length + bytes.length);
      all.set(this.pending, 0);
      all.set(bytes, this.pending.length);
    }
    const hold = incompleteTailLength(all);
    const ready = all.subarray(0, all.length - hold);
    this.pending = all.slice(all.length - hold);
    return this.decodeReady(ready);
  }

  /** Ends the stream. `pendingBytes` > 0 means it ended inside a character; those bytes come
   *  back as one U+FFFD in `text` so the loss is visible, and the caller can report it. */
  flush(): { text: string; pendingBytes: number } {
    const pendingBytes = this.pending.length;
    this.pending = new Uint8Array(0);
    if (pendingBytes > 0) this.sawInvalid = true;
    return { text: pendingBytes > 0 ? '\uFFFD' : '', pendingBytes };
  }

  /** Bytes currently held back (0..3). */
  get pendingBytes(): number {
    return this.pending.length;
  }

  private decodeReady(ready: Uint8Array): string {
    if (ready.length === 0) return '';
    if (!this.sawInvalid && findUtf8Problem(ready) !== null) this.sawInvalid = true;
    return lossy.decode(ready);
  }
}

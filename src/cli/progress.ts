// A byte-progress display for long commands (pull, synth, convert) on stderr: one redrawn bar on a
// terminal, plain occasional lines otherwise (logs, CI), nothing when quiet.

export interface Progress {
  /** Starts a named item of `total` bytes (e.g. one file). */
  start(label: string, total: number, already?: number): void;
  advance(bytes: number): void;
  /** Ends the current item with a short note ("done", "cached", "resumed"). */
  done(note?: string): void;
  log(line: string): void;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v.toFixed(0) : v.toFixed(v >= 100 ? 0 : 1)} ${units[u]}`;
}

export function createProgress(opts: { quiet?: boolean; stream?: NodeJS.WriteStream } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.quiet === true) return { start() {}, advance() {}, done() {}, log() {} };
  const tty = stream.isTTY === true;
  let label = '';
  let total = 0;
  let current = 0;
  let startedAt = 0;
  let startBytes = 0;
  let lastDraw = 0;
  let lastLinePct = -1;

  const rate = (): string => {
    const secs = (Date.now() - startedAt) / 1000;
    return secs > 0.2 ? `${formatBytes((current - startBytes) / secs)}/s` : '';
  };
  const draw = (force: boolean): void => {
    const now = Date.now();
    if (tty) {
      if (!force && now - lastDraw < 100) return;
      lastDraw = now;
      const width = 24;
      const frac = total > 0 ? Math.min(1, current / total) : 1;
      const filled = Math.round(frac * width);
      const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
      const name = label.length > 40 ? `…${label.slice(-39)}` : label;
      stream.write(`\r\x1b[K${name} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(current)}/${formatBytes(total)} ${rate()}`);
    } else {
      // Plain output: a line every 10% (and at least 10 s apart for huge files).
      const pct = total > 0 ? Math.floor((current / total) * 10) * 10 : 100;
      if (!force && (pct === lastLinePct || now - lastDraw < 10_000)) return;
      lastDraw = now;
      lastLinePct = pct;
      stream.write(`${label}: ${pct}% (${formatBytes(current)} of ${formatBytes(total)})\n`);
    }
  };
  return {
    start(l, t, already = 0) {
      label = l;
      total = t;
      current = already;
      startBytes = already;
      startedAt = Date.now();
      lastDraw = 0;
      lastLinePct = -1;
      if (tty) draw(true);
    },
    advance(bytes) {
      current += bytes;
      draw(false);
    },
    done(note = 'done') {
      if (tty) {
        draw(true);
        stream.write(` ${note}\n`);
      } else {
        stream.write(`${label}: ${note} (${formatBytes(total)})\n`);
      }
    },
    log(line) {
      // On a terminal the bar may be mid-line: clear it, print the line, and let the next update redraw.
      stream.write(tty ? `\r\x1b[K${line}\n` : `${line}\n`);
      lastDraw = 0;
    },
  };
}

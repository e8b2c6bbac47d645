// What `gptoss serve`, `gptoss chat` and the library's startServer share about starting up: the
// browser's document collection (opened at once, indexed in the background, the files it left out
// reported once the index is ready), the server's built-in tool factories, and binding the port
// with one-line errors instead of raw socket codes.
import { UserError } from '../errors.ts';
import type { BuiltinToolFactories, GptossServer, RunningServer } from './index.ts';
import type { LocalDocsBackend } from '../tools/index.ts';

/** A skipped file as the user reads it. */
interface Skipped {
  path: string;
  reason: string;
}

/** Beyond this many skipped files, one summary line replaces the list. */
const MAX_SKIPPED_LINES = 10;

/**
 * The lines telling which files the browser left out and why: one per file, or (past
 * MAX_SKIPPED_LINES) one summary line counting them by reason.
 */
export function skippedFileLines(skipped: readonly Skipped[]): string[] {
  if (skipped.length <= MAX_SKIPPED_LINES) return skipped.map((s) => `browser: left out ${s.path} (${s.reason})`);
  const byReason = new Map<string, number>();
  // "6.2 MiB, over the 5 MiB limit" and "7 MiB, over the 5 MiB limit" are one reason.
  for (const s of skipped) {
    const reason = s.reason.replace(/^[\d.]+ [KM]iB, /, '');
    byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
  }
  const reasons = [...byReason].sort((a, b) => b[1] - a[1]).map(([reason, n]) => `${n} ${reason}`);
  return [`browser: left out ${skipped.length} files (${reasons.join('; ')}), e.g. ${skipped[0]!.path}`];
}

/**
 * Opens the document folder of the browser tool (a bad folder fails here, before any model loads).
 * Indexing goes on in the background; once it is done, `report` receives skippedFileLines.
 */
export async function openDocuments(dir: string, report?: (line: string) => void): Promise<LocalDocsBackend> {
  const { LocalDocsBackend } = await import('../tools/index.ts');
  const docs = await LocalDocsBackend.open(dir);
  if (report !== undefined) {
    void docs.indexed.then(() => {
      for (const line of skippedFileLines(docs.skipped)) report(line);
    });
  }
  return docs;
}

/** The built-in tools a server offers its requests. */
export interface ServerToolSetup {
  /** The browser over this documents folder. */
  browser?: string;
  python?: boolean;
  /** Receives the lines naming the documents the browser left out, once its index is ready. */
  report?: (line: string) => void;
}

/** The server's tool factories: a browser session per request over one shared collection; one python tool (stateless). */
export async function serverTools(setup: ServerToolSetup): Promise<BuiltinToolFactories> {
  const tools: BuiltinToolFactories = {};
  if (setup.browser !== undefined) {
    const docs = await openDocuments(setup.browser, setup.report);
    const { BrowserSession } = await import('../tools/index.ts');
    tools.browser = () => new BrowserSession(docs);
  }
  if (setup.python === true) {
    const { PythonTool } = await import('../tools/index.ts');
    // Stateless (a fresh interpreter per call), so one instance serves every request.
    const python = new PythonTool();
    tools.python = () => python;
  }
  return tools;
}

/** How the caller names the port and host to the user (`--port` on the command line, `port` in code). */
export interface ListenNames {
  port: string;
  host: string;
}

/** Starts listening; a port in use or an address that cannot be bound is a UserError naming the setting to change. */
export async function listen(server: GptossServer, port: number, host: string, names: ListenNames): Promise<RunningServer> {
  try {
    return await server.listen(port, host);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UserError('usage', `port ${port} on ${host} is already in use (change ${names.port})`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new UserError('usage', `cannot bind to ${names.host} ${host}`);
    throw e;
  }
}

/**
 * The tools the embedded gpt-oss-nano was trained with, when `dir` is that model and the user
 * chose no tools: the browser over the documents it ships with, and python (`trained`: a server
 * gives them to requests that name no tools). Other models get tools only when asked for.
 */
export async function trainedTools(dir: string | undefined, chosen: { browser?: string; python: boolean; none: boolean }): Promise<{ browser?: string; python: boolean; line?: string; trained?: boolean }> {
  if (dir === undefined || chosen.none || chosen.browser !== undefined || chosen.python) {
    return { ...(chosen.none ? {} : chosen.browser !== undefined ? { browser: chosen.browser } : {}), python: !chosen.none && chosen.python };
  }
  const { isEmbeddedNano, nanoDocsDir } = await import('../checkpoint/nano.ts');
  if (!isEmbeddedNano(dir)) return { python: false };
  return { browser: nanoDocsDir(), python: true, trained: true, line: 'tools: browser (the documents gpt-oss-nano ships with) and python, as the model was trained (--no-tools to leave them out)' };
}

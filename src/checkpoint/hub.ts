// Downloads checkpoints from the Hugging Face hub into the hub's own cache layout, so files that
// `hf download` (huggingface_hub) already fetched are reused and ours are reused by it:
//   <cache>/models--<org>--<name>/blobs/<etag>               file contents (etag: LFS sha256 or git blob sha1)
//   <cache>/models--<org>--<name>/snapshots/<commit>/<path>  relative symlinks to the blobs
//   <cache>/models--<org>--<name>/refs/<revision>            the commit a branch or tag resolved to
// File list: GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true (sizes, LFS sha256).
// Contents: GET {endpoint}/{repo}/resolve/{commit}/{path}, resumed with Range into <blob>.incomplete.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, openSync, closeSync, writeSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, lstatSync, readlinkSync, unlinkSync, fsyncSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { UserError } from '../errors.ts';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** One file of a repository revision as the hub lists it. */
export interface RepoFile {
  path: string;
  size: number;
  /** The cache's blob name: the LFS sha256 for LFS files, the git blob sha1 otherwise. */
  etag: string;
  /** Present for LFS files (all weights): the sha256 of the contents. */
  sha256?: string;
  /** Git blob id (sha1 of "blob <size>\0" + contents), used to check small files. */
  blobId?: string;
}

export interface RepoRevision {
  repo: string;
  commit: string;
  files: RepoFile[];
}

/** Callbacks a caller can use to show progress; all optional. */
export interface PullEvents {
  fileStart?: (file: RepoFile, alreadyBytes: number, resumed: boolean) => void;
  bytes?: (n: number) => void;
  fileDone?: (file: RepoFile, status: FileStatus) => void;
  warn?: (message: string) => void;
}

export type FileStatus = 'downloaded' | 'resumed' | 'cached';

export interface PullOptions {
  repo: string;
  revision?: string;
  /** fnmatch-style patterns (`*` crosses folders, as huggingface_hub's allow_patterns). */
  include?: string[];
  cacheDir?: string;
  endpoint?: string;
  token?: string;
  /** Attempts per file after a dropped connection (each resumes where the last stopped). */
  retries?: number;
  /** Delay before retry k is retryDelayMs * 2^k (default 500 ms). */
  retryDelayMs?: number;
  /** Abort a transfer that receives nothing for this long (default 60 s). */
  stallTimeoutMs?: number;
  events?: PullEvents;
}

export interface PullResult {
  repo: string;
  commit: string;
  snapshotDir: string;
  /** The folder to pass as --model: the snapshot (the loader finds original/ inside). */
  modelDir: string;
  files: { path: string; size: number; status: FileStatus }[];
}

// ---- environment ------------------------------------------------------------------------------

/** The hub cache folder: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const hubCache = env['HF_HUB_CACHE'] ?? env['HUGGINGFACE_HUB_CACHE'];
  if (hubCache !== undefined && hubCache !== '') return hubCache;
  return join(hfHome(env), 'hub');
}

function hfHome(env: NodeJS.ProcessEnv): string {
  const home = env['HF_HOME'];
  if (home !== undefined && home !== '') return home;
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'huggingface');
}

/** The user's token: HF_TOKEN, else the file `hf auth login` writes ($HF_HOME/token). */
export function hubToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const t = env['HF_TOKEN'] ?? env['HUGGING_FACE_HUB_TOKEN'];
  if (t !== undefined && t.trim() !== '') return t.trim();
  const file = env['HF_TOKEN_PATH'] ?? join(hfHome(env), 'token');
  try {
    const v = readFileSync(file, 'utf8').trim();
    return v === '' ? undefined : v;
  } catch {
    return undefined;
  }
}

export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  const e = env['HF_ENDPOINT'];
  return (e !== undefined && e !== '' ? e : DEFAULT_ENDPOINT).replace(/\/+$/, '');
}

/** models--org--name, the hub cache's folder for a model repository. */
export function repoFolderName(repo: string): string {
  return ['models', ...repo.split('/')].join('--');
}

export function validateRepoId(repo: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(repo) || repo.includes('..')) {
    throw new UserError('usage', `"${repo}" is not a repository id (expected owner/name, e.g. openai/gpt-oss-20b)`);
  }
}

// ---- patterns ---------------------------------------------------------------------------------

/** fnmatch semantics as huggingface_hub uses them: `*` matches any run (including `/`), `?` one char; a trailing `/` means the whole folder. */
export function matchesPattern(path: string, pattern: string): boolean {
  const p = pattern.endsWith('/') ? `${pattern}*` : pattern;
  let re = '^';
  for (const ch of p) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${re}$`).test(path);
}

/**
 * What the engine needs when no --include is given: for repositories with an `original/` folder
 * (the openai releases) that folder plus the top-level config and tokenizer files; otherwise the
 * Hugging Face layout's safetensors, index and JSON files.
 */
export function defaultPatterns(files: RepoFile[]): string[] {
  const top = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja'];
  if (files.some((f) => f.path.startsWith('original/'))) return ['original/*', ...top];
  return ['*.safetensors', '*.json', 'chat_template.jinja'];
}

// ---- HTTP -------------------------------------------------------------------------------------

function headersFor(token: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { 'user-agent': 'gptoss/0.1 (hub cache compatible)', ...extra };
  if (token !== undefined) h['authorization'] = `Bearer ${token}`;
  return h;
}

function httpError(status: number, what: string, hasToken: boolean): UserError {
  if (status === 401 || status === 403) {
    return new UserError('network', `${what}: access denied (HTTP ${status}); ${hasToken ? 'the token in HF_TOKEN was refused, or you have not accepted the model\'s license' : 'set HF_TOKEN to a token with access to it'}`);
  }
  if (status === 404) return new UserError('network', `${what}: not found (HTTP 404); check the repository id and --revision`);
  return new UserError('network', `${what}: HTTP ${status}`);
}

function networkError(what: string, e: unknown): UserError {
  const err = e as { message?: string; cause?: { code?: string; message?: string } };
  const detail = err.cause?.code ?? err.cause?.message ?? err.message ?? String(e);
  return new UserError('network', `${what}: ${detail}`);
}

/** Lists a revision's files with sizes and hashes. */
export async function fetchRevision(repo: string, revision: string, endpoint: string, token: string | undefined): Promise<RepoRevision> {
  validateRepoId(repo);
  const url = `${endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
  let res: Response;
  try {
    res = await fetch(url, { headers: headersFor(token) });
  } catch (e) {
    throw networkError(`cannot reach ${endpoint} for ${repo}`, e);
  }
  if (!res.ok) throw httpError(res.status, `${repo}@${revision}`, token !== undefined);
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    throw new UserError('network', `${repo}@${revision}: the hub answered with invalid JSON`);
  }
  const obj = body as { sha?: unknown; siblings?: unknown };
  if (typeof obj.sha !== 'string' || !/^[0-9a-f]{40}$/.test(obj.sha) || !Array.isArray(obj.siblings)) {
    throw new UserError('network', `${repo}@${revision}: unexpected answer from the hub (no commit sha or file list)`);
  }
  const files: RepoFile[] = [];
  for (const s of obj.siblings as Record<string, unknown>[]) {
    const path = s['rfilename'];
    if (typeof path !== 'string') continue;
    if (path.split('/').some((part) => part === '..' || part === '') || path.startsWith('/')) {
      throw new UserError('network', `${repo}: refusing unsafe file name "${path}" from the hub`);
    }
    const lfs = s['lfs'] as { sha256?: unknown; size?: unknown } | undefined;
    const blobId = typeof s['blobId'] === 'string' ? (s['blobId'] as string) : undefined;
    const size = typeof lfs?.size === 'number' ? lfs.size : typeof s['size'] === 'number' ? (s['size'] as number) : undefined;
    const sha256 = typeof lfs?.sha256 === 'string' ? lfs.sha256 : undefined;
    const etag = sha256 ?? blobId;
    if (size === undefined || etag === undefined) {
      throw new UserError('network', `${repo}: the hub listed "${path}" without size or hash (is this endpoint a Hugging Face hub?)`);
    }
    const file: RepoFile = { path, size, etag };
    if (sha256 !== undefined) file.sha256 = sha256;
    if (blobId !== undefined) file.blobId = blobId;
    files.push(file);
  }
  return { repo, commit: obj.sha, files };
}

// ---- cache ------------------------------------------------------------------------------------

function linkPointer(blobPath: string, pointerPath: string): void {
  mkdirSync(dirname(pointerPath), { recursive: true });
  try {
    const st = lstatSync(pointerPath);
    if (st.isSymbolicLink() && join(dirname(pointerPath), readlinkSync(pointerPath)) === blobPath) return;
    unlinkSync(pointerPath);
  } catch {
    // absent
  }
  symlinkSync(relative(dirname(pointerPath), blobPath), pointerPath);
}

function fileSize(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}

async function hashFile(path: string, hash: Hash, limit?: number): Promise<void> {
  const stream = createReadStream(path, limit !== undefined ? { end: limit - 1 } : {});
  for await (const chunk of stream) hash.update(chunk as Buffer);
}

function newHash(file: RepoFile): Hash {
  if (file.sha256 !== undefined) return createHash('sha256');
  const h = createHash('sha1');
  h.update(`blob ${file.size}\0`);
  return h;
}

function expectedDigest(file: RepoFile): string | undefined {
  return file.sha256 ?? file.blobId;
}

// ---- transfer ---------------------------------------------------------------------------------

class Dropped extends Error {}

/** Streams one file into `incomplete` from byte `start`; returns the bytes now on disk. */
async function transfer(url: string, incomplete: string, start: number, hash: Hash, opts: { token: string | undefined; stallMs: number; onBytes: (n: number) => void; onRestart: () => Hash; what: string }): Promise<number> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => controller.abort(), opts.stallMs);
  };
  arm();
  let res: Response;
  try {
    res = await fetch(url, { headers: headersFor(opts.token, start > 0 ? { range: `bytes=${start}-` } : {}), signal: controller.signal });
  } catch (e) {
    clearTimeout(timer);
    throw new Dropped((e as Error).message);
  }
  if (res.status >= 500 || res.status === 429 || res.status === 408) {
    clearTimeout(timer);
    throw new Dropped(`HTTP ${res.status}`);
  }
  if (!res.ok) {
    clearTimeout(timer);
    throw httpError(res.status, opts.what, opts.token !== undefined);
  }
  let at = start;
  let flags = 'a';
  if (start > 0 && res.status !== 206) {
    // The server ignored the Range: start over rather than append a second copy.
    at = 0;
    flags = 'w';
    hash = opts.onRestart();
  }
  const fd = openSync(incomplete, flags);
  try {
    if (res.body === null) throw new Dropped('empty body');
    const reader = res.body.getReader();
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw new Dropped((e as Error).message);
      }
      if (chunk.done) break;
      arm();
      const data = chunk.value;
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
      hash.update(data);
      at += data.length;
      opts.onBytes(data.length);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
    clearTimeout(timer);
  }
  return at;
}

async function downloadFile(file: RepoFile, url: string, blobPath: string, opts: Required<Pick<PullOptions, 'retries' | 'retryDelayMs' | 'stallTimeoutMs'>> & { token: string | undefined; events: PullEvents; what: string }): Promise<FileStatus> {
  const incomplete = `${blobPath}.incomplete`;
  mkdirSync(dirname(blobPath), { recursive: true });
  let have = fileSize(incomplete) ?? 0;
  if (have > file.size) {
    rmSync(incomplete, { force: true });
    have = 0;
  }
  const resumed = have > 0;
  let hash = newHash(file);
  if (have > 0) await hashFile(incomplete, hash, have);
  opts.events.fileStart?.(file, have, resumed);
  let attempt = 0;
  let lastError = '';
  while (have < file.size) {
    try {
      have = await transfer(url, incomplete, have, hash, {
        token: opts.token,
        stallMs: opts.stallTimeoutMs,
        what: opts.what,
        onBytes: (n) => opts.events.bytes?.(n),
        onRestart: () => {
          hash = newHash(file);
          opts.events.warn?.(`${file.path}: the server ignored the range request; downloading from the start`);
          return hash;
        },
      });
      if (have < file.size) throw new Dropped(`connection closed after ${have} of ${file.size} bytes`);
    } catch (e) {
      if (!(e instanceof Dropped)) throw e;
      have = fileSize(incomplete) ?? 0;
      lastError = e.message;
      if (attempt >= opts.retries) {
        throw new UserError('network', `${opts.what}: transfer interrupted (${lastError}); ${have} of ${file.size} bytes kept, run pull again to resume`);
      }
      // Re-hash what is on disk: a chunk may have been written but not hashed, or vice versa.
      hash = newHash(file);
      await hashFile(incomplete, hash, have);
      opts.events.warn?.(`${file.path}: ${lastError}; retrying from byte ${have}`);
      await new Promise((r) => setTimeout(r, opts.retryDelayMs * 2 ** attempt));
      attempt++;
    }
  }
  if (have !== file.size) {
    rmSync(incomplete, { force: true });
    throw new UserError('network', `${opts.what}: size mismatch (expected ${file.size} bytes, got ${have}); the download was deleted, run pull again`);
  }
  const digest = hash.digest('hex');
  const expected = expectedDigest(file);
  if (expected !== undefined && digest !== expected) {
    rmSync(incomplete, { force: true });
    throw new UserError('network', `${opts.what}: corrupted download (${file.sha256 !== undefined ? 'sha256' : 'git sha1'} ${digest}, expected ${expected}); the file was deleted, run pull again`);
  }
  renameSync(incomplete, blobPath);
  return resumed ? 'resumed' : 'downloaded';
}

// ---- pull -------------------------------------------------------------------------------------

/**
 * Downloads the selected files of `repo` at `revision` into the hub cache and returns the snapshot
 * folder. Files already in the cache (same blob) are reused; interrupted transfers resume.
 */
export async function pull(opts: PullOptions): Promise<PullResult> {
  validateRepoId(opts.repo);
  const revision = opts.revision ?? 'main';
  const endpoint = (opts.endpoint ?? hubEndpoint()).replace(/\/+$/, '');
  const token = opts.token ?? hubToken();
  const cacheDir = opts.cacheDir ?? hubCacheDir();
  const events = opts.events ?? {};
  const storage = join(cacheDir, repoFolderName(opts.repo));

  let info: RepoRevision;
  try {
    info = await fetchRevision(opts.repo, revision, endpoint, token);
  } catch (e) {
    const offline = e instanceof UserError && e.kind === 'network' && /cannot reach/.test(e.message) ? offlineSnapshot(opts.repo, storage, revision) : undefined;
    if (offline === undefined) throw e;
    events.warn?.(`${(e as Error).message}; using the cached snapshot ${offline.commit.slice(0, 12)}`);
    return offline;
  }

  const patterns = opts.include !== undefined && opts.include.length > 0 ? opts.include : defaultPatterns(info.files);
  const selected = info.files.filter((f) => patterns.some((p) => matchesPattern(f.path, p)));
  if (selected.length === 0) {
    throw new UserError('usage', `${opts.repo}@${revision}: no file matches ${patterns.map((p) => `"${p}"`).join(', ')} (${info.files.length} files in the repository)`);
  }

  const snapshotDir = join(storage, 'snapshots', info.commit);
  mkdirSync(snapshotDir, { recursive: true });
  if (revision !== info.commit) {
    const refPath = join(storage, 'refs', ...revision.split('/'));
    mkdirSync(dirname(refPath), { recursive: true });
    let current: string | undefined;
    try {
      current = readFileSync(refPath, 'utf8');
    } catch {
      current = undefined;
    }
    if (current !== info.commit) {
      const tmp = `${refPath}.${process.pid}.tmp`;
      writeFileSync(tmp, info.commit);
      renameSync(tmp, refPath);
    }
  }

  const out: PullResult['files'] = [];
  for (const file of selected) {
    const blobPath = join(storage, 'blobs', file.etag);
    const pointer = join(snapshotDir, ...file.path.split('/'));
    const what = `${opts.repo}/${file.path}`;
    let status: FileStatus;
    const blobSize = fileSize(blobPath);
    if (blobSize === file.size) {
      status = 'cached';
    } else {
      if (blobSize !== undefined) {
        events.warn?.(`${file.path}: cached blob has ${blobSize} bytes, expected ${file.size}; downloading again`);
        rmSync(blobPath, { force: true });
      }
      const url = `${endpoint}/${opts.repo}/resolve/${info.commit}/${file.path.split('/').map(encodeURIComponent).join('/')}`;
      status = await downloadFile(file, url, blobPath, {
        token, events, what,
        retries: opts.retries ?? 5,
        retryDelayMs: opts.retryDelayMs ?? 500,
        stallTimeoutMs: opts.stallTimeoutMs ?? 60_000,
      });
    }
    linkPointer(blobPath, pointer);
    events.fileDone?.(file, status);
    out.push({ path: file.path, size: file.size, status });
  }
  return { repo: opts.repo, commit: info.commit, snapshotDir, modelDir: snapshotDir, files: out };
}

/** The snapshot a ref points to when the hub cannot be reached, if it exists locally. */
function offlineSnapshot(repo: string, storage: string, revision: string): PullResult | undefined {
  let commit = revision;
  if (!/^[0-9a-f]{40}$/.test(revision)) {
    try {
      commit = readFileSync(join(storage, 'refs', ...revision.split('/')), 'utf8').trim();
    } catch {
      return undefined;
    }
  }
  const snapshotDir = join(storage, 'snapshots', commit);
  if (!existsSync(snapshotDir)) return undefined;
  return { repo, commit, snapshotDir, modelDir: snapshotDir, files: [] };
}

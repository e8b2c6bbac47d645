// A local stand-in for the Hugging Face hub on 127.0.0.1: the revision API and the resolve URLs,
// with Range support and switches for the failures `pull` must survive (a dropped connection, a
// corrupted file, a required token). Serves whatever files the test puts in `files`.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HubFile {
  path: string;
  data: Buffer;
  lfs: boolean;
}

export interface HubRequest {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

export class FakeHub {
  readonly commit = createHash('sha1').update('fake commit').digest('hex');
  files: HubFile[] = [];
  requests: HubRequest[] = [];
  /** Paths whose next GET is cut after this fraction of the bytes, once. */
  cutOnce = new Map<string, number>();
  /** Paths served with one byte flipped (the listing keeps the true hash). */
  corrupt = new Set<string>();
  requiredToken: string | undefined;
  ignoreRange = false;
  private server: Server | undefined;
  endpoint = '';

  async start(): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.endpoint = `http://127.0.0.1:${port}`;
    return this.endpoint;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  resolveRequests(): HubRequest[] {
    return this.requests.filter((r) => r.url.includes('/resolve/'));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '';
    const rec: HubRequest = { method: req.method ?? 'GET', url };
    if (typeof req.headers.range === 'string') rec.range = req.headers.range;
    if (typeof req.headers.authorization === 'string') rec.authorization = req.headers.authorization;
    this.requests.push(rec);
    if (this.requiredToken !== undefined && req.headers.authorization !== `Bearer ${this.requiredToken}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'Invalid credentials' }));
      return;
    }
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^?]+)(\?.*)?$/.exec(url);
    if (api !== null) {
      if (api[1] !== 'openai/gpt-oss-test') {
        res.writeHead(404).end(JSON.stringify({ error: 'Repository not found' }));
        return;
      }
      const siblings = this.files.map((f) => {
        const blobId = gitBlobSha1(f.data);
        return f.lfs
          ? { rfilename: f.path, size: f.data.length, blobId, lfs: { sha256: sha256(f.data), size: f.data.length, pointerSize: 134 } }
          : { rfilename: f.path, size: f.data.length, blobId };
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: api[1], sha: this.commit, siblings }));
      return;
    }
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url);
    const file = resolve !== null ? this.files.find((f) => f.path === decodeURIComponent(resolve[3]!)) : undefined;
    if (resolve === null || file === undefined) {
      res.writeHead(404).end('not found');
      return;
    }
    let data = file.data;
    if (this.corrupt.has(file.path)) {
      data = Buffer.from(data);
      data[data.length >> 1] ^= 0x40;
    }
    const etag = file.lfs ? sha256(file.data) : gitBlobSha1(file.data);
    const headers: Record<string, string | number> = { 'x-repo-commit': this.commit, etag: `"${etag}"`, 'accept-ranges': 'bytes' };
    if (file.lfs) {
      headers['x-linked-etag'] = `"${etag}"`;
      headers['x-linked-size'] = file.data.length;
    }
    let start = 0;
    const m = typeof req.headers.range === 'string' ? /^bytes=(\d+)-$/.exec(req.headers.range) : null;
    if (m !== null && !this.ignoreRange) {
      start = Number(m[1]);
      headers['content-range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
      headers['content-length'] = data.length - start;
      res.writeHead(206, headers);
    } else {
      headers['content-length'] = data.length;
      res.writeHead(200, headers);
    }
    const body = data.subarray(start);
    const cut = this.cutOnce.get(file.path);
    if (cut !== undefined) {
      this.cutOnce.delete(file.path);
      const n = Math.floor(body.length * cut);
      res.write(body.subarray(0, n), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  }
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function gitBlobSha1(data: Buffer): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

// Keeps web pages from driving the server through the user's browser. Without an API key a loopback
// server is safe only if browsers cannot reach it: a page can make the browser send requests to
// 127.0.0.1 (cross-origin, or by DNS rebinding its own name onto 127.0.0.1). So the Host header must
// name this server (a rebinding page's requests carry the attacker's host name), and a request
// from a page (an Origin header) must come from the server's own origin or one allowed by --cors.
import { hostname, networkInterfaces } from 'node:os';
import { UserError } from '../errors.ts';

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];
const WILDCARD_ADDRESSES = new Set(['0.0.0.0', '::', '[::]', '']);

/** `name[:port]` of a Host header, the name lower case (IPv6 in brackets); undefined when malformed. */
export function parseHost(value: string): { name: string; port: number | undefined } | undefined {
  const v = value.trim().toLowerCase();
  let name = v;
  let portText: string | undefined;
  if (v.startsWith('[')) {
    const close = v.indexOf(']');
    if (close < 0) return undefined;
    name = v.slice(0, close + 1);
    const rest = v.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return undefined;
      portText = rest.slice(1);
    }
  } else {
    const colon = v.lastIndexOf(':');
    if (colon >= 0) {
      name = v.slice(0, colon);
      portText = v.slice(colon + 1);
    }
  }
  if (name === '' || (name.includes(':') && !name.startsWith('['))) return undefined;
  if (portText === undefined) return { name, port: undefined };
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  return { name, port: Number(portText) };
}

/** An address as it appears in a Host header (IPv6 in brackets). */
function asHostName(address: string): string {
  const a = address.toLowerCase();
  return a.includes(':') && !a.startsWith('[') ? `[${a}]` : a;
}

/**
 * Which Host headers the server answers: the loopback names and the address it is bound to, with
 * the port it listens on (for a wildcard bind, every address of this machine and its host name),
 * plus an allow-list: `name` (any port), `name:port`, or `*` (no check, e.g. behind a proxy that
 * rewrites names).
 */
export class HostGuard {
  /** Names accepted with the listening port. */
  private readonly local = new Set(LOOPBACK_NAMES);
  /** Allow-list entries without a port. */
  private readonly anyPort = new Set<string>();
  /** Allow-list entries with a port, as `name:port`. */
  private readonly withPort = new Set<string>();
  private readonly everything: boolean;
  /** The listening port; until listen() any port of a local name is accepted. */
  private port: number | undefined;

  constructor(allowed: readonly string[] = []) {
    this.everything = allowed.includes('*');
    for (const entry of allowed) {
      if (entry === '*') continue;
      const host = parseHost(entry);
      if (host === undefined) throw new UserError('usage', `invalid allowed host '${entry}' (expected a name, name:port or *)`);
      if (host.port === undefined) this.anyPort.add(host.name);
      else this.withPort.add(`${host.name}:${host.port}`);
    }
  }

  /** Records where the server listens. */
  listening(address: string, port: number): void {
    this.port = port;
    if (WILDCARD_ADDRESSES.has(address)) {
      this.local.add(asHostName(address === '' ? '0.0.0.0' : address));
      this.local.add(hostname().toLowerCase());
      for (const list of Object.values(networkInterfaces())) {
        for (const a of list ?? []) if (a.scopeid === undefined || a.scopeid === 0) this.local.add(asHostName(a.address));
      }
    } else this.local.add(asHostName(address));
  }

  allows(hostHeader: string): boolean {
    if (this.everything) return true;
    const host = parseHost(hostHeader);
    if (host === undefined) return false;
    if (this.anyPort.has(host.name)) return true;
    const port = host.port ?? 80;
    if (this.withPort.has(`${host.name}:${port}`)) return true;
    return this.local.has(host.name) && (this.port === undefined || this.port === port);
  }
}

/**
 * True when a request with this Origin header may be served: the server's own origin (`http://`
 * and the Host it was sent to), or one of the CORS origins (`*` for any).
 */
export function originAllowed(origin: string, hostHeader: string, corsOrigins: readonly string[]): boolean {
  const o = origin.trim().toLowerCase();
  if (o === `http://${hostHeader.trim().toLowerCase()}`) return true;
  return corsOrigins.some((allowed) => allowed === '*' || allowed.toLowerCase().replace(/\/+$/, '') === o);
}

// Structured outputs: decoding constrained by a JSON schema. The schema is compiled into a small
// graph of nodes, checked to admit a finite value of bounded size everywhere (a $ref cycle with no
// way out, or a minItems of a billion, is refused before generation), and a byte-level pushdown
// automaton (a stack of immutable frames) follows the output and says which next bytes keep it a
// valid prefix of some JSON value matching the schema. A token is allowed when all its bytes are
// accepted in turn. The sampler sees this as a logits processor that sets disallowed tokens to
// -Infinity. Two budgets keep every output finishable: whitespace runs are short, and when the
// tokens left are barely enough to close the value the constraint only allows the shortest
// completion, so the result parses and validates even when cut short.
import { UserError } from '../errors.ts';
import type { LogitsProcessor } from './sampler.ts';

/** A JSON Schema as plain JSON (the subset used by structured outputs and function parameters). */
export type JsonSchema = { [key: string]: unknown } | boolean;

// ---- schema -> nodes ---------------------------------------------------------------------------

type Node =
  | { kind: 'any'; depth: number }
  | { kind: 'union'; options: Node[] }
  | { kind: 'literals'; values: Uint8Array[] }
  | { kind: 'string'; minLength: number; maxLength: number }
  | { kind: 'number'; integer: boolean; nonNegative: boolean }
  | { kind: 'boolean' }
  | { kind: 'null' }
  | { kind: 'array'; items: Node; minItems: number; maxItems: number }
  | ObjectNode
  | { kind: 'ref'; target: () => Node };

interface ObjectNode {
  kind: 'object';
  properties: Map<string, Node>;
  /** Property names in declaration order. */
  order: string[];
  required: Set<string>;
  /** Schema of undeclared keys; null when only declared keys are allowed. */
  additional: Node | null;
}

const encoder = new TextEncoder();
/** Longest string the constraint lets a model write when the schema sets no maxLength. */
const DEFAULT_MAX_STRING = 4096;
/** Nesting allowed inside values whose schema says nothing ("any"). */
const ANY_DEPTH = 4;
/** Deepest nesting of subschemas (properties, items, anyOf, $ref ...) structured outputs support. */
export const MAX_SCHEMA_NESTING = 64;
/**
 * Longest "shortest value" any part of a schema may have: the constraint must be able to complete
 * every value it lets the model begin, within the answer's token budget.
 */
export const MAX_SHORTEST_BYTES = 65536;

/**
 * Compiles a JSON schema; unsupported keywords are ignored (the output is still valid JSON). A
 * schema it cannot honour is a UserError('input') naming the place (`#/properties/a`): a remote
 * $ref, nesting past MAX_SCHEMA_NESTING, a part that admits no finite value (an endless $ref cycle,
 * minItems above maxItems, an empty anyOf), a part whose shortest value is over MAX_SHORTEST_BYTES,
 * or a $ref cycle through anyOf that never enters an object or array.
 */
export function compileSchema(schema: JsonSchema): Node {
  const root = schema;
  const memo = new Map<unknown, Node>();
  const paths = new Map<Node, string>();
  const resolveRef = (ref: string, path: string): JsonSchema => {
    if (!ref.startsWith('#')) throw new UserError('input', `${path}: unsupported $ref "${clip(ref)}" (only local references)`);
    let at: unknown = root;
    for (const part of ref.slice(1).split('/').filter((p) => p !== '')) {
      const key = decodeURIComponent(part.replace(/~1/g, '/').replace(/~0/g, '~'));
      at = typeof at === 'object' && at !== null && Object.hasOwn(at, key) ? (at as Record<string, unknown>)[key] : undefined;
      if (at === undefined) throw new UserError('input', `${path}: $ref "${clip(ref)}" does not resolve`);
    }
    return at as JsonSchema;
  };
  const compile = (s: unknown, depth: number, path: string): Node => {
    if (typeof s !== 'boolean' && (typeof s !== 'object' || s === null || Array.isArray(s))) {
      throw new UserError('input', `${path}: a schema must be an object or a boolean`);
    }
    if (s === true || Object.keys(s).length === 0) return { kind: 'any', depth: ANY_DEPTH };
    if (s === false) throw new UserError('input', `${path}: schema \`false\` accepts nothing`);
    const cached = memo.get(s);
    if (cached !== undefined) return cached;
    if (depth > MAX_SCHEMA_NESTING) throw new UserError('input', `${path}: the schema nests more than ${MAX_SCHEMA_NESTING} levels deep (the most structured outputs support)`);
    const o = s as Record<string, unknown>;
    if (typeof o.$ref === 'string') {
      const target = resolveRef(o.$ref, path);
      let node: Node | undefined;
      const ref: Node = { kind: 'ref', target: () => (node ??= compile(target, depth + 1, `${path}/$ref`)) };
      memo.set(s, ref);
      paths.set(ref, path);
      return ref;
    }
    let node: Node;
    if ('const' in o) node = { kind: 'literals', values: [encoder.encode(JSON.stringify(o.const))] };
    else if (Array.isArray(o.enum)) {
      if (o.enum.length === 0) throw new UserError('input', `${path}: empty enum`);
      node = { kind: 'literals', values: o.enum.map((v) => encoder.encode(JSON.stringify(v))) };
    } else if (Array.isArray(o.anyOf) || Array.isArray(o.oneOf)) {
      const word = Array.isArray(o.anyOf) ? 'anyOf' : 'oneOf';
      const variants = o[word] as unknown[];
      node = { kind: 'union', options: variants.map((v, i) => compile(v, depth + 1, `${path}/${word}/${i}`)) };
    } else if (Array.isArray(o.allOf) && o.allOf.length === 1) {
      node = compile(o.allOf[0], depth + 1, `${path}/allOf/0`);
    } else {
      const types = Array.isArray(o.type) ? (o.type as unknown[]) : typeof o.type === 'string' ? [o.type] : inferTypes(o);
      const options = types.map((t) => compileType(o, t, depth, path));
      node = options.length === 1 ? options[0]! : { kind: 'union', options };
    }
    if (o.nullable === true && node.kind !== 'null') node = { kind: 'union', options: [node, { kind: 'null' }] };
    memo.set(s, node);
    if (!paths.has(node)) paths.set(node, path);
    return node;
  };
  const compileType = (s: Record<string, unknown>, type: unknown, depth: number, path: string): Node => {
    switch (type) {
      case 'string': {
        const minLength = count(s.minLength, 0, Math.ceil);
        return { kind: 'string', minLength, maxLength: count(s.maxLength, Math.max(DEFAULT_MAX_STRING, minLength), Math.floor) };
      }
      case 'number':
      case 'integer': {
        const min = typeof s.minimum === 'number' ? s.minimum : typeof s.exclusiveMinimum === 'number' ? s.exclusiveMinimum : undefined;
        const max = typeof s.maximum === 'number' ? s.maximum : typeof s.exclusiveMaximum === 'number' ? s.exclusiveMaximum : undefined;
        if (type === 'integer' && min !== undefined && max !== undefined && max - min <= 1000) {
          // A small integer range is exact as a list of literals.
          const lo = typeof s.exclusiveMinimum === 'number' ? Math.floor(min) + 1 : Math.ceil(min);
          const hi = typeof s.exclusiveMaximum === 'number' ? Math.ceil(max) - 1 : Math.floor(max);
          if (hi < lo) throw new UserError('input', `${path}: integer range is empty`);
          return { kind: 'literals', values: Array.from({ length: hi - lo + 1 }, (_, i) => encoder.encode(String(lo + i))) };
        }
        return { kind: 'number', integer: type === 'integer', nonNegative: min !== undefined && min >= 0 };
      }
      case 'boolean':
        return { kind: 'boolean' };
      case 'null':
        return { kind: 'null' };
      case 'array': {
        const items = s.items === undefined ? ({ kind: 'any', depth: ANY_DEPTH } as Node) : compile(s.items, depth + 1, `${path}/items`);
        return { kind: 'array', items, minItems: count(s.minItems, 0, Math.ceil), maxItems: count(s.maxItems, Infinity, Math.floor) };
      }
      case 'object': {
        const props = s.properties ?? {};
        if (typeof props !== 'object' || props === null || Array.isArray(props)) throw new UserError('input', `${path}/properties: must be an object mapping names to schemas`);
        const order = Object.keys(props);
        const properties = new Map(order.map((k) => [k, compile((props as Record<string, unknown>)[k], depth + 1, `${path}/properties/${clip(k)}`)] as const));
        const required = new Set(Array.isArray(s.required) ? s.required.filter((r): r is string => typeof r === 'string') : []);
        for (const r of required) {
          if (properties.has(r)) continue;
          if (s.additionalProperties === false) throw new UserError('input', `${path}: required property ${clip(JSON.stringify(r))} is not in properties and additionalProperties is false (no object can have it)`);
          properties.set(r, { kind: 'any', depth: ANY_DEPTH });
          order.push(r);
        }
        // Declared properties close the object: structured outputs require additionalProperties
        // false, and writing only declared keys is valid either way.
        let additional: Node | null = null;
        if (order.length === 0 && s.additionalProperties !== false) {
          additional =
            typeof s.additionalProperties === 'object' && s.additionalProperties !== null
              ? compile(s.additionalProperties, depth + 1, `${path}/additionalProperties`)
              : { kind: 'any', depth: ANY_DEPTH };
        }
        return { kind: 'object', properties, order, required, additional };
      }
      default:
        throw new UserError('input', `${path}: unsupported schema type ${clip(JSON.stringify(type) ?? String(type))}`);
    }
  };
  const top = compile(schema, 0, '#');
  checkFinite(top, paths);
  return top;
}

/** Bytes of the shortest JSON value a (valid) schema allows: what a constrained answer needs at least. */
export function shortestJsonBytes(schema: JsonSchema): number {
  return shortestOf.get(compileSchema(schema))!.bytes;
}

function inferTypes(s: Record<string, unknown>): string[] {
  if (s.properties !== undefined || s.required !== undefined || s.additionalProperties !== undefined) return ['object'];
  if (s.items !== undefined) return ['array'];
  return ['object', 'array', 'string', 'number', 'boolean', 'null'];
}

/** A count keyword (minLength, maxItems ...) rounded towards what the schema allows; `fallback` when absent or invalid. */
function count(v: unknown, fallback: number, round: (x: number) => number): number {
  return typeof v === 'number' && v >= 0 ? (v === Infinity ? v : round(v)) : fallback;
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}

function deref(node: Node): Exclude<Node, { kind: 'ref' }> {
  while (node.kind === 'ref') node = node.target();
  return node;
}

// ---- finiteness and shortest values --------------------------------------------------------------

/** The children a node's value is made of (every $ref target is compiled on the way). */
function childrenOf(node: Node): Node[] {
  switch (node.kind) {
    case 'union':
      return node.options;
    case 'ref':
      return [node.target()];
    case 'array':
      return [node.items];
    case 'object':
      return [...node.properties.values(), ...(node.additional !== null ? [node.additional] : [])];
    default:
      return [];
  }
}

/** Length in bytes of the shortest value of each node, and for a union the option giving it. */
const shortestOf = new WeakMap<Node, { bytes: number; via?: Node }>();

/**
 * Every node reachable from `top` must admit a finite value no longer than MAX_SHORTEST_BYTES (the
 * constraint completes whatever the model began with its shortest value), and no cycle may run
 * through unions and $refs alone (starting such a value would recurse forever). Shortest lengths
 * come from Knuth's generalization of Dijkstra's algorithm (each node's length is at least any of
 * its parts', so the smallest unsettled candidate is final), linear in the schema, cycles included.
 */
function checkFinite(top: Node, paths: Map<Node, string>): void {
  // Collect every node (forcing $refs), giving unnamed ones the place of their parent.
  const nodes: Node[] = [top];
  const seen = new Set<Node>(nodes);
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]!;
    for (const child of childrenOf(node)) {
      if (seen.has(child)) continue;
      seen.add(child);
      nodes.push(child);
      if (!paths.has(child)) paths.set(child, paths.get(node) ?? '#');
    }
  }
  const where = (n: Node): string => paths.get(n) ?? '#';

  // Cycles through unions and $refs only (a white-grey-black depth-first search without recursion).
  const state = new Map<Node, 1 | 2>();
  for (const start of nodes) {
    if (state.has(start)) continue;
    const stack: [Node, number][] = [[start, 0]];
    state.set(start, 1);
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const [node, next] = frame;
      const edges = node.kind === 'union' ? node.options : node.kind === 'ref' ? [node.target()] : [];
      if (next >= edges.length) {
        state.set(node, 2);
        stack.pop();
        continue;
      }
      frame[1]++;
      const child = edges[next]!;
      const s = state.get(child);
      if (s === 1) throw new UserError('input', `${where(child)}: a $ref cycle through anyOf/oneOf/$ref never enters an object or array (a value would nest forever)`);
      if (s === undefined) {
        state.set(child, 1);
        stack.push([child, 0]);
      }
    }
  }

  // Rules: a node's length from its parts' lengths. A union has one rule per option.
  interface Rule {
    head: Node;
    parts: Node[];
    waiting: number;
    length: (part: (n: Node) => number) => number;
  }
  const rules: Rule[] = [];
  const usedBy = new Map<Node, Rule[]>();
  const rule = (head: Node, parts: Node[], length: Rule['length']): void => {
    const r: Rule = { head, parts, waiting: parts.length, length };
    rules.push(r);
    for (const p of parts) {
      const list = usedBy.get(p);
      if (list === undefined) usedBy.set(p, [r]);
      else list.push(r);
    }
  };
  for (const n of nodes) {
    switch (n.kind) {
      case 'any':
      case 'boolean':
      case 'null':
        rule(n, [], () => 4); // null, true
        break;
      case 'number':
        rule(n, [], () => 1);
        break;
      case 'literals':
        rule(n, [], () => shortestBytes(n.values).length);
        break;
      case 'string':
        if (n.minLength <= n.maxLength) rule(n, [], () => 2 + n.minLength);
        break;
      case 'union':
        // Only options the automaton would pick for their own first byte: it commits to the first
        // option that accepts a byte, so a later option starting like an earlier one is never taken.
        {
          const taken = new Set<number>();
          for (const o of n.options) {
            const starts = firstBytes(o);
            if (!overlaps(taken, starts)) rule(n, [o], (len) => len(o));
            for (const b of starts) taken.add(b);
          }
        }
        break;
      case 'ref':
        rule(n, [n.target()], (len) => len(n.target()));
        break;
      case 'array':
        if (n.minItems > n.maxItems) break;
        if (n.minItems === 0) rule(n, [], () => 2);
        else rule(n, [n.items], (len) => 2 + n.minItems * (len(n.items) + 1) - 1);
        break;
      case 'object': {
        const keys = n.order.filter((k) => n.required.has(k));
        rule(n, keys.map((k) => n.properties.get(k)!), (len) => 2 + keys.reduce((sum, k, i) => sum + (i > 0 ? 1 : 0) + encoder.encode(JSON.stringify(k)).length + 1 + len(n.properties.get(k)!), 0));
        break;
      }
    }
  }
  const settled = new Map<Node, number>();
  const best = new Map<Node, { bytes: number; via?: Node }>();
  const heap = new MinHeap<Node>();
  const offer = (r: Rule): void => {
    if (settled.has(r.head)) return;
    const bytes = r.length((n) => settled.get(n)!);
    const current = best.get(r.head);
    if (current !== undefined && current.bytes <= bytes) return;
    best.set(r.head, r.head.kind === 'union' ? { bytes, via: r.parts[0]! } : { bytes });
    heap.push(bytes, r.head);
  };
  for (const r of rules) if (r.waiting === 0) offer(r);
  for (let next = heap.pop(); next !== undefined; next = heap.pop()) {
    const [bytes, node] = next;
    if (settled.has(node)) continue;
    settled.set(node, bytes);
    // A part used twice by one rule (two required properties of one schema) counts twice.
    for (const r of usedBy.get(node) ?? []) if (--r.waiting === 0) offer(r);
  }
  // Deepest first (the order found them outermost first), so the message names the part at fault.
  for (const n of nodes.slice().reverse()) {
    const bytes = settled.get(n);
    if (bytes === undefined || bytes === Infinity) {
      throw new UserError('input', `${where(n)}: admits no finite value (an endless $ref cycle, minItems above maxItems, minLength above maxLength, or an empty anyOf)`);
    }
    if (bytes > MAX_SHORTEST_BYTES) {
      throw new UserError('input', `${where(n)}: its shortest value is ${bytes} bytes, more than the ${MAX_SHORTEST_BYTES} structured outputs support (lower minItems or minLength)`);
    }
    shortestOf.set(n, best.get(n)!);
  }
}

const VALUE_START = {
  string: [0x22],
  number: [0x2d, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39],
  boolean: [0x74, 0x66],
  null: [0x6e],
  array: [0x5b],
  object: [0x7b],
};
const firstBytesOf = new WeakMap<Node, ReadonlySet<number>>();

/** The bytes a value of `node` can start with (no cycles through unions and $refs: checked first). */
function firstBytes(node: Node): ReadonlySet<number> {
  let out = firstBytesOf.get(node);
  if (out !== undefined) return out;
  switch (node.kind) {
    case 'any':
      out = new Set(Object.values(VALUE_START).flat());
      break;
    case 'union':
      out = new Set(node.options.flatMap((o) => [...firstBytes(o)]));
      break;
    case 'ref':
      out = firstBytes(node.target());
      break;
    case 'literals':
      out = new Set(node.values.map((v) => v[0]!));
      break;
    case 'number':
      out = new Set(node.nonNegative ? VALUE_START.number.slice(1) : VALUE_START.number);
      break;
    default:
      out = new Set(VALUE_START[node.kind]);
  }
  firstBytesOf.set(node, out);
  return out;
}

function overlaps(a: ReadonlySet<number>, b: ReadonlySet<number>): boolean {
  for (const x of b) if (a.has(x)) return true;
  return false;
}

/** A binary min-heap of values by numeric key. */
class MinHeap<T> {
  private readonly keys: number[] = [];
  private readonly values: T[] = [];
  push(key: number, value: T): void {
    let i = this.keys.length;
    this.keys.push(key);
    this.values.push(value);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.keys[parent]! <= key) break;
      this.keys[i] = this.keys[parent]!;
      this.values[i] = this.values[parent]!;
      i = parent;
    }
    this.keys[i] = key;
    this.values[i] = value;
  }
  pop(): [number, T] | undefined {
    if (this.keys.length === 0) return undefined;
    const out: [number, T] = [this.keys[0]!, this.values[0]!];
    const key = this.keys.pop()!;
    const value = this.values.pop()!;
    const n = this.keys.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && this.keys[child + 1]! < this.keys[child]!) child++;
        if (this.keys[child]! >= key) break;
        this.keys[i] = this.keys[child]!;
        this.values[i] = this.values[child]!;
        i = child;
      }
      this.keys[i] = key;
      this.values[i] = value;
    }
    return out;
  }
}

// ---- the automaton -----------------------------------------------------------------------------

type Frame =
  | { t: 'value'; node: Node; ws: number }
  | { t: 'object'; node: ObjectNode; phase: 'start' | 'key' | 'colon' | 'value' | 'after'; seen: readonly string[]; key: string | null; ws: number }
  | { t: 'key'; candidates: readonly string[]; values: readonly Uint8Array[]; pos: number }
  | { t: 'array'; node: Extract<Node, { kind: 'array' }>; phase: 'start' | 'value' | 'after'; count: number; ws: number }
  | { t: 'string'; min: number; max: number; len: number; esc: number; cont: number; lo: number; hi: number; free: boolean }
  | { t: 'literal'; values: readonly Uint8Array[]; pos: number }
  | { t: 'number'; integer: boolean; phase: NumberPhase; digits: number };

type NumberPhase = 'sign' | 'zero' | 'int' | 'dot' | 'frac' | 'e' | 'esign' | 'exp';

/** The automaton's state: frames from the outermost value to the innermost. Empty = complete. */
export type JsonState = readonly Frame[];

type StepResult =
  | { k: 'stay'; frame: Frame }
  | { k: 'push'; frame: Frame; child: Frame }
  | { k: 'done'; key?: string }
  | { k: 'doneRefeed'; key?: string }
  | null;

const WS = new Set([0x20, 0x0a, 0x0d, 0x09]);
const isDigit = (b: number): boolean => b >= 0x30 && b <= 0x39;
const isHex = (b: number): boolean => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
/** Digits allowed in the integer part, fraction and exponent of a number (keeps numbers finite). */
const MAX_INT_DIGITS = 16;
const MAX_FRAC_DIGITS = 12;
const MAX_EXP_DIGITS = 2;

export class JsonAutomaton {
  readonly root: Node;
  readonly maxWhitespace: number;
  constructor(schema: JsonSchema, options: { maxWhitespace?: number } = {}) {
    this.root = compileSchema(schema);
    this.maxWhitespace = options.maxWhitespace ?? 20;
  }

  initial(): JsonState {
    return [{ t: 'value', node: this.root, ws: 0 }];
  }

  /** The state after `byte`, or null when the byte cannot continue a valid output. */
  feed(state: JsonState, byte: number): JsonState | null {
    const stack = state.slice();
    for (;;) {
      const top = stack[stack.length - 1];
      if (top === undefined) return null;
      const r = this.stepFrame(top, byte);
      if (r === null) return null;
      if (r.k === 'stay') {
        stack[stack.length - 1] = r.frame;
        return stack;
      }
      if (r.k === 'push') {
        stack[stack.length - 1] = r.frame;
        stack.push(r.child);
        return stack;
      }
      stack.pop();
      this.childDone(stack, r.key);
      if (r.k === 'done') return stack;
    }
  }

  feedBytes(state: JsonState, bytes: Uint8Array): JsonState | null {
    let s: JsonState | null = state;
    for (let i = 0; i < bytes.length && s !== null; i++) s = this.feed(s, bytes[i]!);
    return s;
  }

  /** True when the bytes so far form a complete value (a trailing number may still grow). */
  isComplete(state: JsonState): boolean {
    if (state.length === 0) return true;
    if (state.length !== 1) return false;
    const f = state[0]!;
    return (f.t === 'number' && numberCanEnd(f.phase)) || (f.t === 'literal' && f.values.some((v) => v.length === f.pos));
  }

  /** The shortest bytes that complete the value from `state`. */
  completion(state: JsonState): Uint8Array {
    const out: number[] = [];
    let childKey: string | null | undefined;
    for (let i = state.length - 1; i >= 0; i--) {
      const f = state[i]!;
      const parent = state[i - 1];
      if (f.t === 'key' && parent?.t === 'object') {
        // Finish the key whose completion (rest of key, value, remaining required keys) is shortest.
        const j = this.bestKey(f, parent).index;
        for (const b of f.values[j]!.subarray(f.pos)) out.push(b);
        for (const b of this.frameCompletion({ ...parent, phase: 'colon', key: f.candidates[j]! }, false)) out.push(b);
        i--; // the parent object is done too
        continue;
      }
      if (f.t === 'string' && f.free) childKey = null;
      const parentOfKey = f.t === 'object' && (f.phase === 'start' || f.phase === 'key') && i < state.length - 1;
      for (const b of this.frameCompletion(parentOfKey ? { ...f, phase: 'colon', key: childKey ?? null } : f, i === state.length - 1)) out.push(b);
      if (!(f.t === 'string' && f.free)) childKey = undefined;
    }
    return Uint8Array.from(out);
  }

  /**
   * completion(state).length without writing the bytes out. Every frame but the innermost adds an
   * amount that depends on the frame alone (an object waiting on a key completes as if at its colon
   * with a free key), and a token changes only the top of the stack, so those amounts are cached
   * per frame: checking a candidate token near the end of the budget costs the top frames only,
   * not the whole (up to MAX_SHORTEST_BYTES long) completion.
   */
  completionLength(state: JsonState): number {
    let total = 0;
    for (let i = state.length - 1; i >= 0; i--) {
      const f = state[i]!;
      const parent = state[i - 1];
      if (f.t === 'key' && parent?.t === 'object') {
        total += this.bestKey(f, parent).length;
        i--;
        continue;
      }
      if (i === state.length - 1) {
        total += this.frameCompletionLength(f, true);
        continue;
      }
      let below = frameTail.get(f);
      if (below === undefined) {
        const parentOfKey = f.t === 'object' && (f.phase === 'start' || f.phase === 'key');
        frameTail.set(f, (below = this.frameCompletionLength(parentOfKey ? { ...f, phase: 'colon', key: null } : f, false)));
      }
      total += below;
    }
    return total;
  }

  /**
   * The candidate key (first of the shortest) that completes the object soonest, and that length:
   * the rest of the key, `:` and its value, then the required keys still missing. Linear in the
   * object's keys (a candidate that is itself required drops out of the missing ones).
   */
  private bestKey(f: Extract<Frame, { t: 'key' }>, parent: Extract<Frame, { t: 'object' }>): { index: number; length: number } {
    const node = parent.node;
    const seen = new Set(parent.seen);
    const entry = (k: string): number => 1 + encoder.encode(JSON.stringify(k)).length + 1 + shortestValueBytes(node.properties.get(k)!);
    let missing = 0;
    for (const k of node.order) if (node.required.has(k) && !seen.has(k)) missing += entry(k);
    let best = { index: 0, length: Infinity };
    f.candidates.forEach((candidate, j) => {
      const value = shortestValueBytes(node.properties.get(candidate)!);
      const stillMissing = node.required.has(candidate) && !seen.has(candidate) ? missing - entry(candidate) : missing;
      const length = f.values[j]!.length - f.pos + 1 + value + stillMissing + 1;
      if (length < best.length) best = { index: j, length };
    });
    return best;
  }

  /** frameCompletion(f, innermost).length, counted. */
  private frameCompletionLength(f: Frame, innermost: boolean): number {
    switch (f.t) {
      case 'value':
        return shortestValueBytes(f.node);
      case 'string': {
        let n = f.esc === 1 ? 1 : f.esc >= 2 ? 6 - f.esc : 0;
        n += f.cont;
        const len = f.len + (f.esc > 0 ? 1 : 0);
        return n + Math.max(0, f.min - len) + 1;
      }
      case 'literal':
      case 'key':
        return shortestBytes(f.values).length - f.pos;
      case 'number':
        return numberCanEnd(f.phase) ? 0 : 1;
      case 'array': {
        let count = f.count + (f.phase === 'value' && !innermost ? 1 : 0);
        const item = f.node.minItems > 0 ? shortestValueBytes(f.node.items) : 0;
        let n = 0;
        if (f.phase === 'start' && f.node.minItems > 0) {
          n += item;
          count = 1;
        }
        return n + Math.max(0, f.node.minItems - count) * (item + 1) + 1;
      }
      case 'object': {
        const node = f.node;
        const seen = new Set(f.seen);
        let n = 0;
        let first = f.phase === 'start';
        const valueOf = (key: string | null): Node => (key === null ? (node.additional ?? { kind: 'null' }) : node.properties.get(key)!);
        const keyBytes = (k: string): number => encoder.encode(JSON.stringify(k)).length;
        if (f.phase === 'key') {
          const key = nextKey(node, seen);
          n += (key === null ? 2 : keyBytes(key)) + 1 + shortestValueBytes(valueOf(key));
          if (key !== null) seen.add(key);
        } else if (f.phase === 'colon') {
          n += 1 + shortestValueBytes(valueOf(f.key));
          if (f.key !== null) seen.add(f.key);
        } else if (f.phase === 'value' && f.key !== null) {
          seen.add(f.key);
        }
        for (const k of node.order) {
          if (!node.required.has(k) || seen.has(k)) continue;
          n += (first ? 0 : 1) + keyBytes(k) + 1 + shortestValueBytes(node.properties.get(k)!);
          first = false;
        }
        return n + 1;
      }
    }
  }

  private childDone(stack: Frame[], key: string | undefined): void {
    const parent = stack[stack.length - 1];
    if (parent === undefined) return;
    if (parent.t === 'object') {
      if (parent.phase === 'key' || parent.phase === 'start') {
        stack[stack.length - 1] = { ...parent, phase: 'colon', key: key ?? null, ws: 0 };
      } else {
        stack[stack.length - 1] = { ...parent, phase: 'after', seen: parent.key === null ? parent.seen : [...parent.seen, parent.key], key: null, ws: 0 };
      }
    } else if (parent.t === 'array') {
      stack[stack.length - 1] = { ...parent, phase: 'after', count: parent.count + 1, ws: 0 };
    } else {
      throw new Error(`internal: frame ${parent.t} cannot hold a child`);
    }
  }

  private stepFrame(f: Frame, b: number): StepResult {
    switch (f.t) {
      case 'value':
        return this.stepValue(f, b);
      case 'object':
        return this.stepObject(f, b);
      case 'array':
        return this.stepArray(f, b);
      case 'key':
        return stepKey(f, b);
      case 'string':
        return stepString(f, b);
      case 'literal':
        return stepLiteral(f, b);
      case 'number':
        return stepNumber(f, b);
    }
  }

  private stepValue(f: Extract<Frame, { t: 'value' }>, b: number): StepResult {
    if (WS.has(b)) return f.ws < this.maxWhitespace ? { k: 'stay', frame: { ...f, ws: f.ws + 1 } } : null;
    const start = this.startValue(f.node, b);
    return start === null ? null : start;
  }

  /** The frame a value of `node` becomes on its first byte `b`. */
  private startValue(nodeIn: Node, b: number): StepResult {
    const node = deref(nodeIn);
    switch (node.kind) {
      case 'union': {
        // The first variant that accepts the byte wins (valid for anyOf; for oneOf the variants are
        // normally distinguished by their type).
        for (const option of node.options) {
          const r = this.startValue(option, b);
          if (r !== null) return r;
        }
        return null;
      }
      case 'literals': {
        const values = node.values.filter((v) => v[0] === b);
        if (values.length === 0) return null;
        if (values.length === 1 && values[0]!.length === 1) return { k: 'done' };
        return { k: 'stay', frame: { t: 'literal', values, pos: 1 } };
      }
      case 'string':
        return b === 0x22 ? { k: 'stay', frame: newString(node.minLength, node.maxLength, false) } : null;
      case 'number':
        if (b === 0x2d) return node.nonNegative ? null : { k: 'stay', frame: { t: 'number', integer: node.integer, phase: 'sign', digits: 0 } };
        if (b === 0x30) return { k: 'stay', frame: { t: 'number', integer: node.integer, phase: 'zero', digits: 1 } };
        if (isDigit(b)) return { k: 'stay', frame: { t: 'number', integer: node.integer, phase: 'int', digits: 1 } };
        return null;
      case 'boolean':
        return b === 0x74 || b === 0x66 ? { k: 'stay', frame: { t: 'literal', values: [encoder.encode(b === 0x74 ? 'true' : 'false')], pos: 1 } } : null;
      case 'null':
        return b === 0x6e ? { k: 'stay', frame: { t: 'literal', values: [encoder.encode('null')], pos: 1 } } : null;
      case 'array':
        return b === 0x5b ? { k: 'stay', frame: { t: 'array', node, phase: 'start', count: 0, ws: 0 } } : null;
      case 'object':
        return b === 0x7b ? { k: 'stay', frame: { t: 'object', node, phase: 'start', seen: [], key: null, ws: 0 } } : null;
      case 'any':
        return this.startValue(anyNode(node.depth), b);
    }
  }

  private stepObject(f: Extract<Frame, { t: 'object' }>, b: number): StepResult {
    const node = f.node;
    const ws = (): StepResult => (f.ws < this.maxWhitespace ? { k: 'stay', frame: { ...f, ws: f.ws + 1 } } : null);
    const missingRequired = (): boolean => [...node.required].some((r) => !f.seen.includes(r));
    const keyCandidates = (): string[] => node.order.filter((k) => !f.seen.includes(k));
    const startKey = (): StepResult => {
      if (b !== 0x22) return null;
      if (node.additional !== null) return { k: 'push', frame: { ...f, ws: 0 }, child: newString(0, 256, true) };
      const candidates = keyCandidates();
      if (candidates.length === 0) return null;
      return { k: 'push', frame: { ...f, ws: 0 }, child: { t: 'key', candidates, values: candidates.map((c) => encoder.encode(JSON.stringify(c))), pos: 1 } };
    };
    switch (f.phase) {
      case 'start':
        if (WS.has(b)) return ws();
        if (b === 0x7d) return missingRequired() ? null : { k: 'done' };
        return startKey();
      case 'key':
        if (WS.has(b)) return ws();
        return startKey();
      case 'colon':
        if (WS.has(b)) return ws();
        if (b !== 0x3a) return null;
        return {
          k: 'push',
          frame: { ...f, phase: 'value', ws: 0 },
          child: { t: 'value', node: f.key === null ? (node.additional ?? { kind: 'any', depth: ANY_DEPTH }) : node.properties.get(f.key)!, ws: 0 },
        };
      case 'after':
        if (WS.has(b)) return ws();
        if (b === 0x7d) return missingRequired() ? null : { k: 'done' };
        if (b === 0x2c) {
          if (node.additional === null && keyCandidates().length === 0) return null;
          return { k: 'stay', frame: { ...f, phase: 'key', ws: 0 } };
        }
        return null;
      case 'value':
        throw new Error('internal: object frame stepped while its value is open');
    }
  }

  private stepArray(f: Extract<Frame, { t: 'array' }>, b: number): StepResult {
    const ws = (): StepResult => (f.ws < this.maxWhitespace ? { k: 'stay', frame: { ...f, ws: f.ws + 1 } } : null);
    const node = f.node;
    switch (f.phase) {
      case 'start':
        if (WS.has(b)) return ws();
        if (b === 0x5d) return node.minItems === 0 ? { k: 'done' } : null;
        if (node.maxItems === 0) return null;
        {
          const child = this.startValue(node.items, b);
          if (child === null) return null;
          return this.enterChild({ ...f, phase: 'value', ws: 0 }, child);
        }
      case 'after':
        if (WS.has(b)) return ws();
        if (b === 0x5d) return f.count >= node.minItems ? { k: 'done' } : null;
        if (b === 0x2c && f.count < node.maxItems) return { k: 'push', frame: { ...f, phase: 'value', ws: 0 }, child: { t: 'value', node: node.items, ws: 0 } };
        return null;
      case 'value':
        throw new Error('internal: array frame stepped while its value is open');
    }
  }

  /** The parent after a child value started (and possibly finished) on the current byte. */
  private enterChild(parent: Frame, child: StepResult): StepResult {
    if (child === null) return null;
    if (child.k === 'stay') return { k: 'push', frame: parent, child: child.frame };
    if (child.k === 'done' && parent.t === 'array') return { k: 'stay', frame: { ...parent, phase: 'after', count: parent.count + 1, ws: 0 } };
    throw new Error('internal: unexpected child start');
  }

  /** Bytes that close frame `f`, assuming the child above it (if any) has just completed. */
  private frameCompletion(f: Frame, innermost: boolean): number[] {
    switch (f.t) {
      case 'value':
        return utf8(shortestValue(f.node));
      case 'string': {
        const out: number[] = [];
        let len = f.len;
        if (f.esc === 1) out.push(0x6e); // \n
        else if (f.esc >= 2) for (let i = f.esc; i < 6; i++) out.push(0x30);
        if (f.cont > 0) {
          out.push(f.lo);
          for (let i = 1; i < f.cont; i++) out.push(0x80);
        }
        if (f.esc > 0) len++;
        for (; len < f.min; len++) out.push(0x61);
        out.push(0x22);
        return out;
      }
      case 'literal':
      case 'key':
        return [...shortestBytes(f.values).subarray(f.pos)];
      case 'number':
        return numberCanEnd(f.phase) ? [] : [0x30];
      case 'array': {
        let count = f.count + (f.phase === 'value' && !innermost ? 1 : 0);
        let s = '';
        if (f.phase === 'start' && f.node.minItems > 0) {
          s += shortestValue(f.node.items);
          count = 1;
        }
        for (; count < f.node.minItems; count++) s += ',' + shortestValue(f.node.items);
        return utf8(s + ']');
      }
      case 'object': {
        const node = f.node;
        const seen = new Set(f.seen);
        let s = '';
        let first = f.phase === 'start';
        const valueOf = (key: string | null): Node => (key === null ? (node.additional ?? { kind: 'null' }) : node.properties.get(key)!);
        if (f.phase === 'key') {
          // After a comma a key must follow: the first missing required key, or any free key.
          const key = nextKey(node, seen);
          s += (key === null ? '""' : JSON.stringify(key)) + ':' + shortestValue(valueOf(key));
          if (key !== null) seen.add(key);
        } else if (f.phase === 'colon') {
          s += ':' + shortestValue(valueOf(f.key));
          if (f.key !== null) seen.add(f.key);
        } else if (f.phase === 'value' && f.key !== null) {
          seen.add(f.key);
        }
        for (const k of node.order) {
          if (!node.required.has(k) || seen.has(k)) continue;
          s += (first ? '' : ',') + JSON.stringify(k) + ':' + shortestValue(node.properties.get(k)!);
          first = false;
        }
        return utf8(s + '}');
      }
    }
  }
}

/**
 * The key a completion writes after a comma: the first missing required key, else the unseen key
 * whose entry is shortest (the first of equals), else null (a free key, written `""`).
 */
function nextKey(node: ObjectNode, seen: ReadonlySet<string>): string | null {
  let best: string | null = null;
  let bestCost = Infinity;
  for (const k of node.order) {
    if (seen.has(k)) continue;
    if (node.required.has(k)) return k;
    const cost = JSON.stringify(k).length + shortestValue(node.properties.get(k)!).length;
    if (cost < bestCost) {
      best = k;
      bestCost = cost;
    }
  }
  return best;
}

function shortestBytes(values: readonly Uint8Array[]): Uint8Array {
  return values.reduce((a, b) => (b.length < a.length ? b : a));
}

function utf8(s: string): number[] {
  return [...encoder.encode(s)];
}

function anyNode(depth: number): Node {
  const inner: Node = depth > 0 ? { kind: 'any', depth: depth - 1 } : { kind: 'null' };
  const options: Node[] = [
    { kind: 'string', minLength: 0, maxLength: DEFAULT_MAX_STRING },
    { kind: 'number', integer: false, nonNegative: false },
    { kind: 'boolean' },
    { kind: 'null' },
  ];
  if (depth > 0) {
    options.push({ kind: 'array', items: inner, minItems: 0, maxItems: Infinity });
    options.push({ kind: 'object', properties: new Map(), order: [], required: new Set(), additional: inner });
  }
  return { kind: 'union', options };
}

/** What each frame below the innermost adds to a completion (see completionLength). */
const frameTail = new WeakMap<Frame, number>();

/** Byte length of shortestValue(node). */
function shortestValueBytes(nodeIn: Node): number {
  const node = deref(nodeIn);
  return shortestOf.get(node)?.bytes ?? encoder.encode(shortestValue(node)).length;
}

/** Shortest values already written out, by node. */
const shortestText = new WeakMap<Node, string>();

/**
 * The shortest JSON text of a node's value. Compiled nodes follow the choices checkFinite() made
 * (finite and bounded by construction); the small "any" nodes made while decoding are computed directly.
 */
function shortestValue(nodeIn: Node): string {
  const node = deref(nodeIn);
  const cached = shortestText.get(node);
  if (cached !== undefined) return cached;
  let text: string;
  switch (node.kind) {
    case 'any':
      return 'null';
    case 'union': {
      const via = shortestOf.get(node)?.via;
      text = via !== undefined ? shortestValue(via) : node.options.map((o) => shortestValue(o)).reduce((a, b) => (b.length < a.length ? b : a));
      break;
    }
    case 'literals':
      text = new TextDecoder().decode(shortestBytes(node.values));
      break;
    case 'string':
      text = '"' + 'a'.repeat(node.minLength) + '"';
      break;
    case 'number':
      return '0';
    case 'boolean':
      return 'true';
    case 'null':
      return 'null';
    case 'array':
      text = '[' + new Array(node.minItems).fill(node.minItems > 0 ? shortestValue(node.items) : '').join(',') + ']';
      break;
    case 'object':
      text = '{' + node.order.filter((k) => node.required.has(k)).map((k) => JSON.stringify(k) + ':' + shortestValue(node.properties.get(k)!)).join(',') + '}';
      break;
  }
  shortestText.set(node, text);
  return text;
}

function newString(min: number, max: number, free: boolean): Frame {
  return { t: 'string', min, max, len: 0, esc: 0, cont: 0, lo: 0, hi: 0, free };
}

function stepString(f: Extract<Frame, { t: 'string' }>, b: number): StepResult {
  if (f.cont > 0) {
    if (b < f.lo || b > f.hi) return null;
    return { k: 'stay', frame: { ...f, cont: f.cont - 1, lo: 0x80, hi: 0xbf } };
  }
  if (f.esc === 1) {
    if (b === 0x75) return { k: 'stay', frame: { ...f, esc: 2 } };
    if ('"\\/bfnrt'.includes(String.fromCharCode(b))) return { k: 'stay', frame: { ...f, esc: 0, len: f.len + 1 } };
    return null;
  }
  if (f.esc >= 2) {
    if (!isHex(b)) return null;
    return { k: 'stay', frame: f.esc === 5 ? { ...f, esc: 0, len: f.len + 1 } : { ...f, esc: f.esc + 1 } };
  }
  if (b === 0x22) return f.len >= f.min ? { k: 'done' } : null;
  if (f.len >= f.max) return null;
  if (b === 0x5c) return { k: 'stay', frame: { ...f, esc: 1 } };
  if (b < 0x20 || b === 0x7f) return null;
  if (b < 0x80) return { k: 'stay', frame: { ...f, len: f.len + 1 } };
  // UTF-8 lead bytes and the range their first continuation byte must fall in (no overlongs, no surrogates).
  if (b >= 0xc2 && b <= 0xdf) return { k: 'stay', frame: { ...f, len: f.len + 1, cont: 1, lo: 0x80, hi: 0xbf } };
  if (b === 0xe0) return { k: 'stay', frame: { ...f, len: f.len + 1, cont: 2, lo: 0xa0, hi: 0xbf } };
  if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) return { k: 'stay', frame: { ...f, len: f.len + 1, cont: 2, lo: 0x80, hi: 0xbf } };
  if (b === 0xed) return { k: 'stay', frame: { ...f, len: f.len + 1, cont: 2, lo: 0x80, hi: 0x9f } };
  if (b === 0xf0) return { k: 'stay', frame: { ...f, len: f.len + 1, cont: 3, lo: 0x90, hi: 0xbf } };
  if (b >= 0xf1 && b <= 0xf3) return { k: 'stay', frame: { ...f, len: f.len + 1, cont: 3, lo: 0x80, hi: 0xbf } };
  if (b === 0xf4) return { k: 'stay', frame: { ...f, len: f.len + 1, cont: 3, lo: 0x80, hi: 0x8f } };
  return null;
}

function stepLiteral(f: Extract<Frame, { t: 'literal' }>, b: number): StepResult {
  const values = f.values.filter((v) => v.length > f.pos && v[f.pos] === b);
  if (values.length > 0) {
    const pos = f.pos + 1;
    // Done as soon as the literal is matched and nothing longer shares the prefix.
    if (values.length === 1 && values[0]!.length === pos) return { k: 'done' };
    return { k: 'stay', frame: { t: 'literal', values, pos } };
  }
  if (f.values.some((v) => v.length === f.pos)) return { k: 'doneRefeed' };
  return null;
}

function stepKey(f: Extract<Frame, { t: 'key' }>, b: number): StepResult {
  const keep: number[] = [];
  for (let i = 0; i < f.values.length; i++) if (f.values[i]![f.pos] === b) keep.push(i);
  if (keep.length === 0) return null;
  const pos = f.pos + 1;
  if (keep.length === 1 && f.values[keep[0]!]!.length === pos) return { k: 'done', key: f.candidates[keep[0]!]! };
  return { k: 'stay', frame: { t: 'key', candidates: keep.map((i) => f.candidates[i]!), values: keep.map((i) => f.values[i]!), pos } };
}

function numberCanEnd(phase: NumberPhase): boolean {
  return phase === 'zero' || phase === 'int' || phase === 'frac' || phase === 'exp';
}

function stepNumber(f: Extract<Frame, { t: 'number' }>, b: number): StepResult {
  const to = (phase: NumberPhase, digits: number): StepResult => ({ k: 'stay', frame: { ...f, phase, digits } });
  const end = (): StepResult => (numberCanEnd(f.phase) ? { k: 'doneRefeed' } : null);
  switch (f.phase) {
    case 'sign':
      if (b === 0x30) return to('zero', 1);
      return isDigit(b) ? to('int', 1) : null;
    case 'zero':
      if (b === 0x2e && !f.integer) return to('dot', 0);
      if ((b === 0x65 || b === 0x45) && !f.integer) return to('e', 0);
      return end();
    case 'int':
      if (isDigit(b)) return f.digits < MAX_INT_DIGITS ? to('int', f.digits + 1) : null;
      if (b === 0x2e && !f.integer) return to('dot', 0);
      if ((b === 0x65 || b === 0x45) && !f.integer) return to('e', 0);
      return end();
    case 'dot':
      return isDigit(b) ? to('frac', 1) : null;
    case 'frac':
      if (isDigit(b)) return f.digits < MAX_FRAC_DIGITS ? to('frac', f.digits + 1) : null;
      if (b === 0x65 || b === 0x45) return to('e', 0);
      return end();
    case 'e':
      if (b === 0x2b || b === 0x2d) return to('esign', 0);
      return isDigit(b) ? to('exp', 1) : null;
    case 'esign':
      return isDigit(b) ? to('exp', 1) : null;
    case 'exp':
      if (isDigit(b)) return f.digits < MAX_EXP_DIGITS ? to('exp', f.digits + 1) : null;
      return end();
  }
}

// ---- tokens ------------------------------------------------------------------------------------

/** Token id -> its bytes; null for special tokens (never allowed inside the JSON). */
export type TokenBytes = readonly (Uint8Array | null)[];

interface VocabIndex {
  /** Tokens that are plain string content (no quote, backslash or control byte, whole UTF-8): their code point count; -1 otherwise. */
  plainChars: Int32Array;
  /** The token made of exactly this one byte, or -1. */
  byteToken: Int32Array;
}

const indexes = new WeakMap<TokenBytes, VocabIndex>();

function vocabIndex(vocab: TokenBytes): VocabIndex {
  let index = indexes.get(vocab);
  if (index !== undefined) return index;
  const plainChars = new Int32Array(vocab.length).fill(-1);
  const byteToken = new Int32Array(256).fill(-1);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (let id = 0; id < vocab.length; id++) {
    const bytes = vocab[id];
    if (bytes === null || bytes === undefined || bytes.length === 0) continue;
    if (bytes.length === 1 && byteToken[bytes[0]!] === -1) byteToken[bytes[0]!] = id;
    let plain = true;
    for (const b of bytes) if (b < 0x20 || b === 0x22 || b === 0x5c || b === 0x7f) plain = false;
    if (!plain) continue;
    try {
      plainChars[id] = [...decoder.decode(bytes)].length;
    } catch {
      // not whole UTF-8 on its own: checked byte by byte
    }
  }
  index = { plainChars, byteToken };
  indexes.set(vocab, index);
  return index;
}

export interface ConstraintOptions {
  /** Tokens that end the output; allowed only once the value is complete. */
  stopTokens: readonly number[];
  maxWhitespace?: number;
}

/**
 * A JSON-schema constraint over tokens for one output. `allows` and `mask` ask about the next
 * token; `accept` advances past a sampled one. `remaining` (tokens the output may still use,
 * counting the stop token) switches to the shortest completion when the budget runs out.
 */
export class JsonConstraint {
  readonly automaton: JsonAutomaton;
  private readonly vocab: TokenBytes;
  private readonly index: VocabIndex;
  private readonly stopTokens: readonly number[];
  private state: JsonState;
  private memo = new Map<JsonState, Map<number, JsonState | null>>();
  /** Bytes accepted so far (the JSON text written). */
  private readonly written: number[] = [];
  private stopped = false;

  constructor(schema: JsonSchema, vocab: TokenBytes, options: ConstraintOptions) {
    this.automaton = new JsonAutomaton(schema, { maxWhitespace: options.maxWhitespace });
    this.vocab = vocab;
    this.index = vocabIndex(vocab);
    this.stopTokens = options.stopTokens;
    this.state = this.automaton.initial();
  }

  get complete(): boolean {
    return this.automaton.isComplete(this.state);
  }

  get done(): boolean {
    return this.stopped;
  }

  /** The JSON text accepted so far. */
  text(): string {
    return new TextDecoder().decode(Uint8Array.from(this.written));
  }

  allows(token: number): boolean {
    if (this.stopped) return false;
    if (this.stopTokens.includes(token)) return this.complete;
    return this.after(token) !== null;
  }

  accept(token: number): void {
    if (this.stopped) throw new Error('constraint: token after the stop token');
    if (this.stopTokens.includes(token)) {
      if (!this.complete) throw new Error(`constraint: stop token ${token} before the JSON value is complete`);
      this.stopped = true;
      return;
    }
    const next = this.after(token);
    if (next === null) throw new Error(`constraint: token ${token} is not allowed here`);
    this.state = next;
    this.memo = new Map();
    for (const b of this.vocab[token]!) this.written.push(b);
  }

  /** The shortest bytes that would complete the value now. */
  completion(): Uint8Array {
    return this.automaton.completion(this.state);
  }

  /**
   * Sets the logits of every disallowed token to -Infinity. With `remaining` tokens left, forces the
   * shortest completion once it needs them all. `greedy` checks tokens in logit order and keeps only
   * the first allowed one (exact for temperature 0, and far cheaper than a full scan).
   */
  mask(logits: Float32Array, options: { remaining?: number; greedy?: boolean } = {}): void {
    const remaining = options.remaining ?? Infinity;
    if (this.stopped) {
      logits.fill(-Infinity);
      return;
    }
    const closing = this.completion();
    if (remaining <= closing.length + 1) {
      this.forceCompletion(logits, closing);
      return;
    }
    // Near the end of the budget a token must leave room for the completion it implies (a comma
    // in an object commits to writing another key and value).
    const tight = remaining <= closing.length + 1 + TIGHT_MARGIN ? remaining - 1 : Infinity;
    if (options.greedy === true) {
      const best = this.bestAllowed(logits, tight);
      if (best >= 0) {
        const keep = logits[best]!;
        logits.fill(-Infinity);
        logits[best] = keep;
        return;
      }
    }
    this.fullScan(logits, tight);
  }

  /** True when `token` is allowed and the output can still finish within `room` more tokens after it. */
  private fits(token: number, room: number): boolean {
    if (this.stopTokens.includes(token)) return this.complete;
    const next = this.after(token);
    if (next === null) return false;
    return room === Infinity || this.automaton.completionLength(next) + 1 <= room;
  }

  /** A processor for the sampler; `start` is the index in `generated` where the JSON begins. */
  processor(options: { start: number; remaining?: () => number; greedy?: boolean }): LogitsProcessor {
    let consumed = options.start;
    return (logits, generated) => {
      for (; consumed < generated.length; consumed++) this.accept(generated[consumed]!);
      this.mask(logits, { remaining: options.remaining?.(), greedy: options.greedy });
    };
  }

  private after(token: number): JsonState | null {
    const bytes = this.vocab[token];
    if (bytes === null || bytes === undefined || bytes.length === 0) return null;
    let s: JsonState | null = this.state;
    for (let i = 0; i < bytes.length && s !== null; i++) s = this.transition(s, bytes[i]!);
    return s;
  }

  /**
   * feed() memoized per state object: tokens sharing a prefix (runs of whitespace, common word
   * starts) reuse the states reached by that prefix, so a scan of the vocabulary walks each distinct
   * prefix once, like a trie of the token bytes.
   */
  private transition(state: JsonState, b: number): JsonState | null {
    let edges = this.memo.get(state);
    if (edges === undefined) this.memo.set(state, (edges = new Map()));
    let next = edges.get(b);
    if (next === undefined) edges.set(b, (next = this.automaton.feed(state, b)));
    return next;
  }

  private bestAllowed(logits: Float32Array, room: number): number {
    // Visit tokens from the most likely down; a real model's first allowed token is nearly always
    // among the first few.
    const order = topOrder(logits, 64);
    for (const id of order) if (this.fits(id, room)) return id;
    return -1;
  }

  private fullScan(logits: Float32Array, room: number): void {
    const top = this.state[this.state.length - 1];
    const plainString = top !== undefined && top.t === 'string' && top.esc === 0 && top.cont === 0;
    const stringRoom = plainString ? top.max - top.len : 0;
    const complete = this.complete;
    const plainChars = this.index.plainChars;
    for (let id = 0; id < logits.length; id++) {
      if (logits[id] === -Infinity) continue;
      let ok: boolean;
      // Plain text inside a string never lengthens the completion.
      if (plainString && plainChars[id]! >= 0) ok = plainChars[id]! <= stringRoom && plainChars[id]! > 0;
      else if (this.stopTokens.includes(id)) ok = complete;
      else ok = this.fits(id, room);
      if (!ok) logits[id] = -Infinity;
    }
  }

  private forceCompletion(logits: Float32Array, closing: Uint8Array): void {
    let chosen = -1;
    if (closing.length === 0) {
      chosen = this.stopTokens.find((t) => t < logits.length) ?? -1;
    } else {
      // Prefer the longest token that is a prefix of the completion; a single byte always works.
      chosen = this.index.byteToken[closing[0]!]!;
      let bestLength = chosen >= 0 ? 1 : 0;
      for (let id = 0; id < this.vocab.length && closing.length > 1; id++) {
        const bytes = this.vocab[id];
        if (bytes === null || bytes === undefined || bytes.length <= bestLength || bytes.length > closing.length) continue;
        let prefix = true;
        for (let i = 0; i < bytes.length && prefix; i++) prefix = bytes[i] === closing[i];
        if (prefix) {
          chosen = id;
          bestLength = bytes.length;
        }
      }
    }
    if (chosen < 0) throw new Error('constraint: no token can complete the JSON value');
    logits.fill(-Infinity);
    logits[chosen] = 0;
  }
}

/** Within this many tokens of the end of the budget, each candidate's completion is checked. */
const TIGHT_MARGIN = 48;

/** Indices of the `k` largest logits, largest first. */
function topOrder(logits: Float32Array, k: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v === -Infinity) continue;
    if (ids.length === k && v <= logits[ids[k - 1]!]!) continue;
    let j = ids.length === k ? k - 1 : ids.length;
    while (j > 0 && logits[ids[j - 1]!]! < v) {
      ids[j] = ids[j - 1]!;
      j--;
    }
    ids[j] = i;
  }
  return ids;
}

/** Token bytes for every id of a tokenizer (null for special tokens), computed once. */
export function tokenBytesOf(tokenizer: { vocabSize: number; isSpecial(id: number): boolean; tokenBytes(id: number): Uint8Array }): TokenBytes {
  const cached = tokenBytesCache.get(tokenizer);
  if (cached !== undefined) return cached;
  const out: (Uint8Array | null)[] = new Array(tokenizer.vocabSize);
  for (let id = 0; id < tokenizer.vocabSize; id++) out[id] = tokenizer.isSpecial(id) ? null : tokenizer.tokenBytes(id);
  tokenBytesCache.set(tokenizer, out);
  return out;
}

const tokenBytesCache = new WeakMap<object, TokenBytes>();

// Small readers for request bodies: each returns the typed value or throws a 400 naming the field
// (`param`) the way the OpenAI API does, so a client sees exactly which part of its request is wrong.
import { invalid } from './errors.ts';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonRecord = { [key: string]: Json };

export function isRecord(v: unknown): v is JsonRecord {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function record(v: unknown, param: string): JsonRecord {
  if (!isRecord(v)) throw invalid(param, `${param} must be an object`);
  return v;
}

export function optString(body: JsonRecord, key: string, param = key): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(param, `${param} must be a string`);
  return v;
}

export function optBool(body: JsonRecord, key: string, param = key): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalid(param, `${param} must be a boolean`);
  return v;
}

export function optNumber(body: JsonRecord, key: string, opts: { min?: number; max?: number; integer?: boolean; param?: string } = {}): number | undefined {
  const param = opts.param ?? key;
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(param, `${param} must be a number`);
  if (opts.integer === true && !Number.isInteger(v)) throw invalid(param, `${param} must be an integer`);
  if (opts.min !== undefined && v < opts.min) throw invalid(param, `${param} must be >= ${opts.min}, got ${v}`);
  if (opts.max !== undefined && v > opts.max) throw invalid(param, `${param} must be <= ${opts.max}, got ${v}`);
  return v;
}

export function optArray(body: JsonRecord, key: string, param = key): Json[] | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalid(param, `${param} must be an array`);
  return v;
}

export function oneOf<T extends string>(v: string | undefined, allowed: readonly T[], param: string): T | undefined {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw invalid(param, `${param} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got '${v}'`);
  return v as T;
}

/** Text of a message `content`: a string, or parts with `text` (input_text, output_text, text). */
export function contentText(v: unknown, param: string, allowedTypes: readonly string[]): string {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) throw invalid(param, `${param} must be a string or an array of content parts`);
  let out = '';
  v.forEach((part, i) => {
    const p = record(part, `${param}[${i}]`);
    const type = optString(p, 'type', `${param}[${i}].type`) ?? 'text';
    if (!allowedTypes.includes(type)) {
      throw invalid(`${param}[${i}].type`, `content part type '${type}' is not supported here (supported: ${allowedTypes.join(', ')}); this model reads text only`);
    }
    out += optString(p, 'text', `${param}[${i}].text`) ?? '';
  });
  return out;
}

/** OpenAI's bounds on `metadata`: at most 16 pairs, keys up to 64 characters, string values up to 512. */
export const METADATA_LIMITS = { pairs: 16, keyLength: 64, valueLength: 512 } as const;

/** A request's `metadata`: string values under string keys, within METADATA_LIMITS. */
export function optMetadata(body: JsonRecord, key = 'metadata'): Record<string, string> | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  const m = record(v, key);
  const entries = Object.entries(m);
  if (entries.length > METADATA_LIMITS.pairs) throw invalid(key, `${key} may have at most ${METADATA_LIMITS.pairs} key-value pairs, got ${entries.length}`);
  for (const [k, value] of entries) {
    if (k.length > METADATA_LIMITS.keyLength) throw invalid(key, `${key} keys may be at most ${METADATA_LIMITS.keyLength} characters, got one of ${k.length}`);
    if (typeof value !== 'string') throw invalid(`${key}.${k}`, `${key} values must be strings (${key}.${k} is not)`);
    if (value.length > METADATA_LIMITS.valueLength) throw invalid(`${key}.${k}`, `${key} values may be at most ${METADATA_LIMITS.valueLength} characters, ${key}.${k} has ${value.length}`);
  }
  return m as Record<string, string>;
}

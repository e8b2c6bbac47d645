// The "# Tools" section of system/developer messages: tool namespaces with JSON Schema parameters
// rendered as TypeScript-like declarations, character for character as the official library does
// (including its quirks: unindented top-level keys, the object description placed before `{`,
// unquoted string defaults on enums). Also the validation that rejects schemas we cannot render.
import { UserError } from '../errors.ts';
import type { JsonObject, JsonValue, ToolNamespaces } from './types.ts';

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A field of a schema object (absent when the schema is not an object, as serde's `Value::get`). */
function field(schema: JsonValue | undefined, key: string): JsonValue | undefined {
  return isObject(schema) && Object.hasOwn(schema, key) ? schema[key] : undefined;
}

function str(v: JsonValue | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function isEnum(schema: JsonValue): boolean {
  const e = field(schema, 'enum');
  return Array.isArray(e) && e.length > 0;
}

function isNullable(schema: JsonValue): boolean {
  return field(schema, 'nullable') === true;
}

/** JSON text of a value as serde_json's Display writes it (compact). */
function json(v: JsonValue): string {
  return JSON.stringify(v);
}

function withNullable(typeStr: string, schema: JsonValue): string {
  return isNullable(schema) && !typeStr.includes('null') ? `${typeStr} | null` : typeStr;
}

/** `default: ...` as written after a property or a oneOf variant. */
function defaultComment(def: JsonValue, schema: JsonValue): string {
  if (typeof def === 'string') return isEnum(schema) ? `default: ${def}` : `default: "${def}"`;
  return `default: ${json(def)}`;
}

/** Converts a JSON Schema to the TypeScript-like type text the model was trained on. */
export function jsonSchemaToTypeScript(schema: JsonValue, indent: string): string {
  const oneOf = field(schema, 'oneOf');
  if (Array.isArray(oneOf)) {
    let out = '';
    for (const variant of oneOf) {
      out += `\n${indent} | `;
      out += withNullable(jsonSchemaToTypeScript(variant, `${indent}   `), variant);
      const trailing: string[] = [];
      const desc = str(field(variant, 'description'));
      if (desc !== undefined) trailing.push(desc);
      const def = field(variant, 'default');
      if (def !== undefined) {
        // At the top level a string default on an enum is written as JSON (quoted and escaped).
        trailing.push(typeof def === 'string' && !isEnum(variant) ? `default: "${def}"` : `default: ${json(def)}`);
      }
      if (trailing.length > 0) out += ` // ${trailing.join(' ')}`;
    }
    return out;
  }
  const type = field(schema, 'type');
  if (Array.isArray(type)) {
    const names = type.filter((t): t is string => typeof t === 'string').map((t) => (t === 'integer' ? 'number' : t));
    if (names.length > 0) return names.join(' | ');
  }
  if (typeof type !== 'string') return 'any';
  switch (type) {
    case 'object':
      return objectToTypeScript(schema as JsonObject, indent);
    case 'string': {
      const e = field(schema, 'enum');
      if (Array.isArray(e)) {
        const values = e.filter((v): v is string => typeof v === 'string').map((v) => `"${v}"`);
        if (values.length > 0) return values.join(' | ');
      }
      return 'string';
    }
    case 'number':
    case 'integer':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'array': {
      const items = field(schema, 'items');
      return items === undefined ? 'Array<any>' : `${jsonSchemaToTypeScript(items, indent)}[]`;
    }
    default:
      return 'any';
  }
}

function objectToTypeScript(schema: JsonObject, indent: string): string {
  let out = '';
  const desc = str(schema['description']);
  if (desc !== undefined) out += `${indent}// ${desc}\n`;
  out += '{\n';
  const props = field(schema, 'properties');
  if (isObject(props)) {
    const reqField = field(schema, 'required');
    const required = new Set(Array.isArray(reqField) ? reqField.filter((r): r is string => typeof r === 'string') : []);
    for (const [key, val] of Object.entries(props)) {
      const optional = required.has(key) ? '' : '?';
      const title = str(field(val, 'title'));
      if (title !== undefined) out += `${indent}// ${title}\n${indent}//\n`;
      const oneOf = field(val, 'oneOf');
      const propDesc = str(field(val, 'description'));
      if (oneOf === undefined && propDesc !== undefined) out += `${indent}// ${propDesc}\n`;
      const examples = field(val, 'examples');
      if (Array.isArray(examples) && examples.length > 0) {
        out += `${indent}// Examples:\n`;
        for (const ex of examples) if (typeof ex === 'string') out += `${indent}// - "${ex}"\n`;
      }
      const def = field(val, 'default');
      if (Array.isArray(oneOf)) {
        // The property description goes above, unless the first variant repeats it.
        const skipDesc = propDesc !== undefined && str(field(oneOf[0], 'description')) === propDesc;
        const descAbove = !skipDesc && propDesc !== undefined;
        if (descAbove) out += `${indent}// ${propDesc}\n`;
        if (def !== undefined) out += `${indent}// ${defaultComment(def, val)}\n`;
        out += `${indent}${key}${optional}:\n`;
        oneOf.forEach((variant, i) => {
          out += `${indent} | ${withNullable(jsonSchemaToTypeScript(variant, `${indent}   `), variant)}`;
          const trailing: string[] = [];
          const vdesc = str(field(variant, 'description'));
          if (!(i === 0 && descAbove) && vdesc !== undefined && vdesc !== propDesc) trailing.push(vdesc);
          const vdef = field(variant, 'default');
          if (vdef !== undefined) trailing.push(defaultComment(vdef, variant));
          if (trailing.length > 0) out += ` // ${trailing.join(' ')}`;
          out += '\n';
        });
        out += `${indent},\n`;
        continue;
      }
      out += `${indent}${key}${optional}: ${withNullable(jsonSchemaToTypeScript(val, `${indent}    `), val)},`;
      if (oneOf === undefined && def !== undefined) out += ` // ${defaultComment(def, val)}`;
      out += '\n';
    }
  }
  out += `${indent}}`;
  return out;
}

/** Rust's `str::lines`: split on \n, drop a trailing \r per line and the empty line after a final \n. */
function lines(s: string): string[] {
  if (s === '') return [];
  const parts = s.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (s.endsWith('\n')) parts.pop();
  return parts;
}

/** Byte-wise (UTF-8) order, as the library's BTreeMap<String, _> iterates. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The "# Tools" section listing every namespace (sorted by name). */
export function renderToolsSection(tools: ToolNamespaces): string {
  const sections = ['# Tools'];
  for (const key of Object.keys(tools).sort(byteOrder)) {
    const ns = tools[key]!;
    const parts = [`## ${ns.name}\n`];
    // A namespace without tools (python) has its description as plain prose, not comments.
    if (ns.description !== undefined) for (const line of lines(ns.description)) parts.push(ns.tools.length > 0 ? `// ${line}` : line);
    if (ns.tools.length > 0) {
      parts.push(`namespace ${ns.name} {\n`);
      for (const tool of ns.tools) {
        for (const line of lines(tool.description)) parts.push(`// ${line}`);
        parts.push(
          tool.parameters !== undefined
            ? `type ${tool.name} = (_: ${jsonSchemaToTypeScript(tool.parameters, '')}) => any;\n`
            : `type ${tool.name} = () => any;\n`,
        );
      }
      parts.push(`} // namespace ${ns.name}`);
    }
    sections.push(parts.join('\n'));
  }
  return sections.join('\n\n');
}

// ---------------------------------------------------------------------------------------------
// Validation: the renderer accepts any JSON, but keywords of the wrong JSON type would silently
// render as `any` (or vanish) and mislead the model, so we reject them with the path at fault.

const STRING_KEYWORDS = ['description', 'title'];

/** Deeper JSON than any real tool schema; bounds the recursion of validation and rendering. */
export const MAX_SCHEMA_DEPTH = 100;

export function validateToolSchema(schema: JsonValue, path: string, nested = false): void {
  if (!nested && nestingDepth(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH) {
    throw new UserError('input', `${path}: the schema is nested more than ${MAX_SCHEMA_DEPTH} levels deep`);
  }
  if (nested && typeof schema === 'boolean') return; // `true`/`false` are schemas too (rendered as `any`)
  if (!isObject(schema)) throw new UserError('input', `${path}: a tool schema must be a JSON object, got ${describe(schema)}`);
  const type = schema['type'];
  if (type !== undefined) {
    const ok = typeof type === 'string' || (Array.isArray(type) && type.length > 0 && type.every((t) => typeof t === 'string'));
    if (!ok) throw new UserError('input', `${path}.type: expected a type name or a list of type names, got ${describe(type)}`);
  }
  for (const k of STRING_KEYWORDS) {
    const v = schema[k];
    if (v !== undefined && typeof v !== 'string') throw new UserError('input', `${path}.${k}: expected a string, got ${describe(v)}`);
  }
  const props = schema['properties'];
  if (props !== undefined) {
    if (!isObject(props)) throw new UserError('input', `${path}.properties: expected an object mapping names to schemas, got ${describe(props)}`);
    for (const [k, v] of Object.entries(props)) validateToolSchema(v, `${path}.properties.${k}`, true);
  }
  const req = schema['required'];
  if (req !== undefined && !(Array.isArray(req) && req.every((r) => typeof r === 'string'))) {
    throw new UserError('input', `${path}.required: expected a list of property names, got ${describe(req)}`);
  }
  const en = schema['enum'];
  if (en !== undefined && !Array.isArray(en)) throw new UserError('input', `${path}.enum: expected a list, got ${describe(en)}`);
  const ex = schema['examples'];
  if (ex !== undefined && !Array.isArray(ex)) throw new UserError('input', `${path}.examples: expected a list, got ${describe(ex)}`);
  const nullable = schema['nullable'];
  if (nullable !== undefined && typeof nullable !== 'boolean') throw new UserError('input', `${path}.nullable: expected true or false, got ${describe(nullable)}`);
  const items = schema['items'];
  if (items !== undefined) validateToolSchema(items, `${path}.items`, true);
  const oneOf = schema['oneOf'];
  if (oneOf !== undefined) {
    if (!Array.isArray(oneOf) || oneOf.length === 0) throw new UserError('input', `${path}.oneOf: expected a non-empty list of schemas, got ${describe(oneOf)}`);
    oneOf.forEach((v, i) => validateToolSchema(v, `${path}.oneOf[${i}]`, true));
  }
}

/** How deeply `value` nests objects and lists (a scalar is 0), counted without recursion; stops past `limit`. */
function nestingDepth(value: JsonValue, limit: number): number {
  let deepest = 0;
  const stack: [JsonValue, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > deepest) deepest = depth + 1;
    if (deepest > limit) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

export function describe(v: JsonValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return String(v);
}

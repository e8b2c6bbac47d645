// Python arithmetic as the python tool runs it, computed in TypeScript: an expression is built
// once and gives both its code and the exact value Python prints for it. Ints stay ints (the
// corpus keeps them small enough to be exact in a double), `/` and any float make a float, floats
// follow IEEE doubles operation by operation as CPython does, `round(x, n)` rounds the exact binary
// value half to even and `print` writes a float as `repr` does (shortest round-trip digits, `.0`
// on integral values, exponent outside 1e-4 <= |x| < 1e16). Nothing here runs Python; the corpus
// test runs a sample of the code through the real tool and compares.

/** A Python number: its value and whether Python holds it as a float (else an int). */
export interface PyExpr {
  code: string;
  value: number;
  isFloat: boolean;
  /** Binding strength, for parentheses: 3 atom or call, 2 product, 1 sum. */
  precedence: number;
}

/** A literal as written in code: an int when integral and written without a point, else a float. */
export function literal(value: number, asFloat = !Number.isInteger(value)): PyExpr {
  if (!Number.isFinite(value) || value < 0) throw new Error(`literal: ${value} is not a non-negative finite number`);
  if (!asFloat && !Number.isSafeInteger(value)) throw new Error(`literal: ${value} is not an exact int`);
  return { code: asFloat ? pyRepr(value) : String(value), value, isFloat: asFloat, precedence: 3 };
}

function wrap(e: PyExpr, min: number): string {
  return e.precedence < min ? `(${e.code})` : e.code;
}

function intResult(value: number): number {
  if (!Number.isSafeInteger(value)) throw new Error(`int arithmetic left the exact range: ${value}`);
  return value;
}

export function add(a: PyExpr, b: PyExpr, op: '+' | '-' = '+'): PyExpr {
  const isFloat = a.isFloat || b.isFloat;
  const raw = op === '+' ? a.value + b.value : a.value - b.value;
  // The right operand of `-` needs parentheses at equal precedence.
  return { code: `${wrap(a, 1)} ${op} ${wrap(b, op === '-' ? 2 : 1)}`, value: isFloat ? raw : intResult(raw), isFloat, precedence: 1 };
}

export function sub(a: PyExpr, b: PyExpr): PyExpr {
  return add(a, b, '-');
}

export function mul(a: PyExpr, b: PyExpr): PyExpr {
  const isFloat = a.isFloat || b.isFloat;
  const raw = a.value * b.value;
  return { code: `${wrap(a, 2)} * ${wrap(b, 2)}`, value: isFloat ? raw : intResult(raw), isFloat, precedence: 2 };
}

/** True division: always a float. */
export function div(a: PyExpr, b: PyExpr): PyExpr {
  if (b.value === 0) throw new Error('division by zero');
  return { code: `${wrap(a, 2)} / ${wrap(b, 3)}`, value: a.value / b.value, isFloat: true, precedence: 2 };
}

/** `x ** 2`. */
export function square(a: PyExpr): PyExpr {
  return { code: `${wrap(a, 3)} ** 2`, value: a.value * a.value, isFloat: a.isFloat, precedence: 3 };
}

/** `min(a, b)`: the first of equal values, as Python returns it. */
export function min(a: PyExpr, b: PyExpr): PyExpr {
  const first = b.value < a.value ? b : a;
  return { code: `min(${a.code}, ${b.code})`, value: first.value, isFloat: first.isFloat, precedence: 3 };
}

/** `round(x, n)`: an int stays an int; a float is rounded half to even on its exact binary value. */
export function round(a: PyExpr, digits: number): PyExpr {
  return { code: `round(${a.code}, ${digits})`, value: a.isFloat ? pyRound(a.value, digits) : a.value, isFloat: a.isFloat, precedence: 3 };
}

/** A name bound earlier in the code (`dose = ...`), standing for its value. */
export function named(name: string, e: PyExpr): PyExpr {
  return { code: name, value: e.value, isFloat: e.isFloat, precedence: 3 };
}

/** What `print(e)` writes, without the newline. */
export function printed(e: PyExpr): string {
  return e.isFloat ? pyRepr(e.value) : String(e.value);
}

/** The exact value of a finite double as mantissa * 2^exponent. */
function exactBinary(x: number): { mantissa: bigint; exponent: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  return biased === 0 ? { mantissa: fraction, exponent: -1074 } : { mantissa: fraction | (1n << 52n), exponent: biased - 1075 };
}

/** CPython's float.__round__(x, digits) for digits >= 0: correctly rounded, ties to even. */
export function pyRound(x: number, digits: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const { mantissa, exponent } = exactBinary(x);
  // |x| * 10^digits = num / den exactly.
  let num = mantissa * 10n ** BigInt(digits);
  let den = 1n;
  if (exponent >= 0) num <<= BigInt(exponent);
  else den <<= BigInt(-exponent);
  let n = num / den;
  const twice = 2n * (num - n * den);
  if (twice > den || (twice === den && n % 2n === 1n)) n += 1n;
  const s = n.toString().padStart(digits + 1, '0');
  const decimal = digits === 0 ? s : `${s.slice(0, s.length - digits)}.${s.slice(s.length - digits)}`;
  const value = Number(decimal);
  return x < 0 ? -value : value;
}

/** CPython's repr of a float. */
export function pyRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  // toExponential() gives the shortest round-trip digits, as repr uses.
  const [mant, exp] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const e = Number(exp);
  const sign = x < 0 ? '-' : '';
  if (e < -4 || e >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  if (e < 0) return `${sign}0.${'0'.repeat(-e - 1)}${digits}`;
  const whole = digits.length <= e + 1 ? digits + '0'.repeat(e + 1 - digits.length) : digits.slice(0, e + 1);
  const frac = digits.length <= e + 1 ? '0' : digits.slice(e + 1);
  return `${sign}${whole}.${frac}`;
}

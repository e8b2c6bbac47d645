// The gpt-oss-nano tasks: clinical arithmetic problems drawn from seeded numbers and composed
// question frames (phrasing.ts), each with the python code that computes it (python.ts gives the
// value the tool prints), the reasoning at each effort, and the final answer. The held-out split
// differs from training in two ways: its frames (one frame key in five, by a hash; the lookups'
// and out-of-domain lists: every fifth entry) and its numbers (a value is held out when a hash of
// its canonical text falls in one fifth); training problems use only training frames and numbers,
// held-out problems only held-out ones.
import type { ReasoningEffort } from '../../harmony/index.ts';
import { arithmeticPhrasing, bmiPhrasing, convertPhrasing, dosePhrasing, frameSplit, hash32, infusionPhrasing, phrasingOf, type Rng, type Split } from './phrasing.ts';
import { add, div, literal, min, mul, named, printed, pyRound, round, square, sub, type PyExpr } from './python.ts';

export const PYTHON_TASKS = ['add', 'subtract', 'multiply', 'divide', 'convert', 'dose', 'infusion', 'bmi'] as const;
export type PythonTask = (typeof PYTHON_TASKS)[number];
export type TaskKind = PythonTask | 'lookup' | 'lookup-dose' | 'out-of-domain';
export const TASKS: readonly TaskKind[] = [...PYTHON_TASKS, 'lookup', 'lookup-dose', 'out-of-domain'];

export type { Rng, Split } from './phrasing.ts';
export { hash32 };

/** A python problem: what the user asks, the code, what it prints and the answer. */
export interface PythonProblem {
  task: PythonTask;
  template: string;
  question: string;
  /** The numbers the user gave, as values. */
  operands: number[];
  code: string;
  /** What print writes (without its newline). */
  printed: string;
  answer: number;
  unit: string;
  /** The analysis before the call, by effort. */
  plan: Record<ReasoningEffort, string>;
  /** The high-effort check after the result. */
  check: string;
  final: string;
}

// ---- numbers ----------------------------------------------------------------------------------

/** The split a number belongs to: one value in five (by a hash of its shortest text) is held out. */
export function numberSplit(value: number): Split {
  return hash32(String(value)) % 5 === 0 ? 'heldout' : 'train';
}

/** The split a template id belongs to: every fifth template of a task is held out. */
export function templateSplit(index: number): Split {
  return index % 5 === 4 ? 'heldout' : 'train';
}

export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

/** A number in [lo, hi] with `decimals` decimals, of the split; other values are redrawn. */
export function drawNumber(rng: Rng, split: Split, lo: number, hi: number, decimals = 0): number {
  const scale = 10 ** decimals;
  for (let tries = 0; tries < 1000; tries++) {
    const v = Math.round((lo + rng() * (hi - lo)) * scale) / scale;
    if (numberSplit(v) === split) return v;
  }
  throw new Error(`no ${split} number in [${lo}, ${hi}]`);
}

/** A value from a list, of the split. */
function drawFrom(rng: Rng, split: Split, values: readonly number[]): number {
  const ok = values.filter((v) => numberSplit(v) === split);
  if (ok.length === 0) throw new Error(`no ${split} value among ${values.join(', ')}`);
  return pick(rng, ok);
}

const SMALL_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve'];

/** A number as a person might write it: "1,250" or "1250", "0.5" or ".5", "twelve". */
export function writeNumber(rng: Rng, v: number): string {
  const plain = String(v);
  const r = rng();
  if (Number.isInteger(v) && v <= 12 && r < 0.15) return SMALL_WORDS[v]!;
  if (v >= 1000 && Number.isInteger(v) && r < 0.5) return v.toLocaleString('en-US');
  if (v > 0 && v < 1 && r < 0.2) return plain.slice(1);
  // A trailing zero, as on a label ("2.50").
  if (!Number.isInteger(v) && r > 0.9) return `${plain}0`;
  return plain;
}

const UNIT_WORDS: Record<string, string[]> = {
  kg: ['kilograms', 'kilos'], g: ['grams'], mg: ['milligrams'], mcg: ['micrograms', 'µg', 'ug'], L: ['litres', 'liters', 'l'], mL: ['millilitres', 'milliliters', 'ml', 'cc'],
};

/** A unit as a person might write it: the symbol, or sometimes a word or another spelling. */
export function writeUnit(rng: Rng, unit: string): string {
  const words = UNIT_WORDS[unit];
  return words !== undefined && rng() < 0.3 ? pick(rng, words) : unit;
}

/** The answer as the final channel writes it: the printed value without a trailing ".0". */
export function answerText(v: number): string {
  return String(v);
}

/** A decimal shown in text without float noise. */
function show(v: number, decimals = 6): string {
  return String(pyRound(v, decimals));
}

function lit(v: number): PyExpr {
  return literal(v);
}

/** Units a conversion goes between, and the power of 1000 from the first to the second. */
const CONVERSIONS: { from: string; to: string; power: number }[] = [
  { from: 'kg', to: 'g', power: 1 }, { from: 'g', to: 'kg', power: -1 },
  { from: 'g', to: 'mg', power: 1 }, { from: 'mg', to: 'g', power: -1 },
  { from: 'mg', to: 'mcg', power: 1 }, { from: 'mcg', to: 'mg', power: -1 },
  { from: 'L', to: 'mL', power: 1 }, { from: 'mL', to: 'L', power: -1 },
  { from: 'kg', to: 'mg', power: 2 }, { from: 'g', to: 'mcg', power: 2 },
];

/** Template indices of a task in a split (the lookups' and out-of-domain questions' lists). */
export function templatesOf(count: number, split: Split): number[] {
  return [...Array(count).keys()].filter((i) => templateSplit(i) === split);
}

/** The split of an item's template: a listed template (`lookup.3`) by its index, a composed frame by its key. */
export function splitOfTemplate(template: string): Split {
  const listed = /^[a-z-]+\.(\d+)$/.exec(template);
  return listed !== null ? templateSplit(Number(listed[1])) : frameSplit(template);
}

// ---- problems ---------------------------------------------------------------------------------

type Words = string[];

const FINALS = [
  (a: string) => `${a}.`,
  (a: string) => `The answer is ${a}.`,
  (a: string) => `It comes to ${a}.`,
  (a: string) => `Result: ${a}.`,
];

function withUnit(v: number, unit: string): string {
  return unit === '' ? answerText(v) : `${answerText(v)} ${unit}`;
}

interface Built {
  operands: number[];
  words: Words;
  expr: PyExpr;
  /** Statements before the print, if any. */
  setup?: string;
  plan: Record<ReasoningEffort, string>;
  check: (answer: number) => string;
  final?: (answer: string) => string;
  unit?: string;
}

function build(task: PythonTask, rng: Rng, split: Split): Built {
  const num = (lo: number, hi: number, decimals = 0): number => drawNumber(rng, split, lo, hi, decimals);
  switch (task) {
    case 'add': {
      const d = rng() < 0.3 ? 1 : 0;
      const a = num(1, 2000, d), b = num(1, 2000, d);
      const e = add(lit(a), lit(b));
      const expr = e.isFloat ? round(e, 2) : e;
      return {
        operands: [a, b], words: [writeNumber(rng, a), writeNumber(rng, b)], expr,
        plan: { low: `Add ${a} and ${b}.`, medium: `The user wants ${a} + ${b}. I will compute it with python.`, high: `The question asks for the sum of ${a} and ${b}. I will compute it exactly with python, then check it by subtracting.` },
        check: (r) => `Check: ${r} - ${b} = ${show(r - b, 2)}, which is ${a}. Good.`,
      };
    }
    case 'subtract': {
      const d = rng() < 0.3 ? 1 : 0;
      let a = num(2, 3000, d), b = num(1, 3000, d);
      while (a === b) b = num(1, 3000, d);
      if (b > a) [a, b] = [b, a];
      const e = sub(lit(a), lit(b));
      const expr = e.isFloat ? round(e, 2) : e;
      return {
        operands: [a, b], words: [writeNumber(rng, a), writeNumber(rng, b)], expr,
        plan: { low: `Subtract ${b} from ${a}.`, medium: `The user wants ${a} - ${b}. I will compute it with python.`, high: `The question asks for ${a} minus ${b}. I will compute it exactly with python, then check by adding back.` },
        check: (r) => `Check: ${r} + ${b} = ${show(r + b, 2)}, which is ${a}. Good.`,
      };
    }
    case 'multiply': {
      const a = num(2, 60), d = rng() < 0.3 ? 1 : 0;
      const b = num(1, 500, d);
      const e = mul(lit(a), lit(b));
      const expr = e.isFloat ? round(e, 2) : e;
      return {
        operands: [a, b], words: [writeNumber(rng, a), writeNumber(rng, b)], expr,
        plan: { low: `Multiply ${a} by ${b}.`, medium: `The user wants ${a} times ${b}. I will compute it with python.`, high: `The question asks for the product of ${a} and ${b}. I will compute it exactly with python, then check by dividing back.` },
        check: (r) => `Check: ${r} / ${a} = ${show(r / a, 2)}, which is ${b}. Good.`,
      };
    }
    case 'divide': {
      const a = num(1, 5000, rng() < 0.3 ? 1 : 0), b = num(2, 48);
      const expr = round(div(lit(a), lit(b)), 2);
      return {
        operands: [a, b], words: [writeNumber(rng, a), writeNumber(rng, b)], expr,
        plan: { low: `Divide ${a} by ${b}.`, medium: `The user wants ${a} / ${b}. I will compute it with python, rounded to 2 decimals.`, high: `The question asks for ${a} divided by ${b}. I will compute it with python and round to 2 decimals, then check by multiplying back.` },
        check: (r) => `Check: ${r} x ${b} = ${show(r * b, 2)}, close to ${a} (the quotient was rounded). Good.`,
      };
    }
    case 'convert': {
      const c = pick(rng, CONVERSIONS);
      const factor = 1000 ** Math.abs(c.power);
      const v = c.power > 0 ? num(0.1, 50, pick(rng, [0, 1, 2])) : num(1, 50000, pick(rng, [0, 0, 1]));
      const amount = v === 0 ? 1 : v;
      const e = c.power > 0 ? mul(lit(amount), lit(factor)) : div(lit(amount), lit(factor));
      const expr = e.isFloat ? round(e, 6) : e;
      const op = c.power > 0 ? 'multiply' : 'divide';
      return {
        operands: [amount], words: [writeNumber(rng, amount), writeUnit(rng, c.from), writeUnit(rng, c.to)], expr, unit: c.to,
        plan: {
          low: `${c.from} to ${c.to}: ${op} by ${factor}.`,
          medium: `1 ${c.power > 0 ? c.from : c.to} = ${factor} ${c.power > 0 ? c.to : c.from}, so I ${op} ${amount} by ${factor}. I will compute it with python.`,
          high: `Converting ${c.from} to ${c.to}. 1 ${c.power > 0 ? c.from : c.to} = ${factor} ${c.power > 0 ? c.to : c.from}, so ${amount} ${c.from} means ${op === 'multiply' ? 'multiplying' : 'dividing'} by ${factor}. I will compute it with python, then check the size makes sense.`,
        },
        check: (r) => `Check: ${c.power > 0 ? `${c.to} is the smaller unit, so the number grows` : `${c.to} is the larger unit, so the number shrinks`}: ${amount} ${c.from} = ${r} ${c.to}. Good.`,
      };
    }
    case 'dose': {
      const perKg = drawFrom(rng, split, [1, 2, 2.5, 4, 5, 6, 7, 7.5, 8, 10, 12, 12.5, 15, 20, 25, 30, 40, 50]);
      const kg = num(3, 110, rng() < 0.5 ? 1 : 0);
      const max = drawFrom(rng, split, [100, 150, 200, 250, 300, 400, 500, 560, 600, 750, 800, 1000, 1200, 1500, 2000, 3000]);
      const product = round(mul(lit(perKg), lit(kg)), 2);
      const expr = min(named('dose', product), lit(max));
      const capped = product.value > max;
      return {
        operands: [perKg, kg, max], words: [writeNumber(rng, perKg), writeNumber(rng, kg), writeNumber(rng, max)], expr, unit: 'mg',
        setup: `dose = ${product.code}`,
        plan: {
          low: `${perKg} mg/kg x ${kg} kg, max ${max} mg.`,
          medium: `Weight-based dose: ${perKg} mg/kg times ${kg} kg, then no more than the ${max} mg maximum. I will compute it with python.`,
          high: `Weight-based dose. The order is ${perKg} mg/kg and the patient weighs ${kg} kg, so the dose is ${perKg} x ${kg} mg, but it must not exceed the maximum of ${max} mg. I will compute the product and take the smaller of it and the maximum with python, then check against the cap.`,
        },
        check: (r) => capped
          ? `Check: ${perKg} x ${kg} = ${product.value} mg is above the ${max} mg maximum, so the dose is capped at ${r} mg.`
          : `Check: ${perKg} x ${kg} = ${product.value} mg is within the ${max} mg maximum, so the dose is ${r} mg.`,
        final: (a) => capped ? `Give ${a}: ${perKg} mg/kg x ${kg} kg would be ${product.value} mg, above the maximum.` : `The dose is ${a} (${perKg} mg/kg x ${kg} kg, below the ${max} mg maximum).`,
      };
    }
    case 'infusion': {
      const drug = drawFrom(rng, split, [25, 40, 50, 100, 200, 250, 400, 500, 800, 1000, 2000]);
      const bag = drawFrom(rng, split, [10, 20, 50, 100, 250, 500, 1000]);
      const ordered = num(1, 200, rng() < 0.3 ? 1 : 0);
      const concentration = div(lit(drug), lit(bag));
      const expr = round(div(lit(ordered), concentration), 2);
      return {
        operands: [drug, bag, ordered], words: [writeNumber(rng, drug), writeNumber(rng, bag), writeNumber(rng, ordered)], expr, unit: 'mL/h',
        plan: {
          low: `Rate = ${ordered} / (${drug}/${bag}) mL/h.`,
          medium: `The concentration is ${drug} mg / ${bag} mL; the rate in mL/h is ${ordered} mg/h divided by it. I will compute it with python.`,
          high: `Infusion rate. The bag holds ${drug} mg in ${bag} mL, so the concentration is ${drug}/${bag} mg/mL. To give ${ordered} mg/h the pump runs at ${ordered} divided by that concentration, in mL/h. I will compute it with python, rounded to 2 decimals, then check by converting back to mg/h.`,
        },
        check: (r) => `Check: ${r} mL/h x ${show(drug / bag, 4)} mg/mL = ${show(r * (drug / bag), 2)} mg/h, about the ordered ${ordered} mg/h. Good.`,
      };
    }
    case 'bmi': {
      const kg = num(35, 160, rng() < 0.4 ? 1 : 0);
      const inMetres = rng() < 0.5;
      const h = inMetres ? num(1.4, 2.05, 2) : num(140, 205);
      const height = inMetres ? lit(h) : div(lit(h), lit(100));
      const expr = round(div(lit(kg), square(height)), 1);
      return {
        operands: [kg, h], words: [writeNumber(rng, kg), String(h), inMetres ? 'm' : 'cm'], expr, unit: 'kg/m2',
        plan: {
          low: `BMI = ${kg} / ${inMetres ? h : `${h}/100`}^2.`,
          medium: `BMI is weight in kg over height in metres squared${inMetres ? '' : `; ${h} cm is ${h}/100 m`}. I will compute it with python.`,
          high: `Body mass index: weight in kg divided by the square of the height in metres. Weight ${kg} kg, height ${inMetres ? `${h} m` : `${h} cm, which is ${h}/100 m`}. I will compute it with python, rounded to 1 decimal, then check it is in a plausible range.`,
        },
        check: (r) => `Check: ${r} kg/m2 is ${r < 18.5 ? 'below 18.5 (underweight)' : r < 25 ? 'between 18.5 and 25 (normal range)' : r < 30 ? 'between 25 and 30 (overweight)' : '30 or more (obese range)'}, plausible for ${kg} kg at that height.`,
        final: (a) => `The BMI is ${a}.`,
      };
    }
  }
}

/** The question's frame, drawn from the split's frames (phrasing.ts), in the built problem's words. */
function phrase(task: PythonTask, rng: Rng, split: Split, w: Words): { key: string; text: string; unit?: string } {
  switch (task) {
    case 'add': case 'subtract': case 'multiply': case 'divide': return phrasingOf(split, () => arithmeticPhrasing(task, rng, w[0]!, w[1]!));
    case 'convert': return phrasingOf(split, () => convertPhrasing(rng, w[0]!, w[1]!, w[2]!));
    case 'dose': return phrasingOf(split, () => dosePhrasing(rng, w[0]!, w[1]!, w[2]!));
    case 'infusion': return phrasingOf(split, () => infusionPhrasing(rng, w[0]!, w[1]!, w[2]!));
    case 'bmi': return phrasingOf(split, () => bmiPhrasing(rng, w[0]!, w[1]!, w[2]!));
  }
}

/** A python problem of `task` from the split's frames and numbers. */
export function pythonProblem(task: PythonTask, rng: Rng, split: Split): PythonProblem {
  const b = build(task, rng, split);
  const frame = phrase(task, rng, split, b.words);
  const unit = b.unit ?? frame.unit ?? '';
  const answer = b.expr.value;
  const answerWithUnit = withUnit(answer, unit);
  const final = b.final !== undefined ? b.final(answerWithUnit) : pick(rng, FINALS)(answerWithUnit);
  const code = `${b.setup !== undefined ? `${b.setup}\n` : ''}print(${b.expr.code})`;
  return {
    task, template: frame.key, question: frame.text, operands: b.operands,
    code, printed: printed(b.expr), answer, unit, plan: b.plan, check: b.check(answer), final,
  };
}

// How the gpt-oss-nano corpus words its python questions: each task's question is composed from
// parts (a lead-in, the operation or the facts in any order, a question, punctuation), each part
// drawn from many wordings, so a task has hundreds to thousands of sentence frames. A frame is
// named by the indices of its parts (its key); one key in five is held out (by a hash), so the
// held-out split asks in frames that training never saw, built from words and symbols it did.

/** Which side of the corpus a question is drawn for. */
export type Split = 'train' | 'heldout';
export type Rng = () => number;

/** A sentence frame drawn for a question: its key (which parts) and its text. */
export interface Phrasing {
  key: string;
  text: string;
}

/** FNV-1a of a string: stable across runs and platforms. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The split a frame belongs to: one key in five (by its hash) is held out. */
export function frameSplit(key: string): Split {
  return hash32(`frame:${key}`) % 5 === 0 ? 'heldout' : 'train';
}

/** Fills `{name}` slots of a wording with the question's words. */
function fill(text: string, words: Record<string, string>): string {
  return text.replace(/\{(\w+)\}/g, (_, name: string) => {
    const w = words[name];
    if (w === undefined) throw new Error(`phrasing: no word for {${name}} in "${text}"`);
    return w;
  });
}

/** Draws parts of a frame, recording each choice in the key. */
class Frame {
  readonly key: string[] = [];
  constructor(private readonly rng: Rng, private readonly words: Record<string, string>) {}

  /** One of `options`, filled; the index becomes part of the key. */
  choose(options: readonly string[], more: Record<string, string> = {}): string {
    const i = Math.floor(this.rng() * options.length);
    this.key.push(String(i));
    return fill(options[i]!, { ...this.words, ...more });
  }

  /** `items` in one of their orders (the order is part of the key). */
  order<T>(items: readonly T[]): T[] {
    const rest = [...items];
    const out: T[] = [];
    while (rest.length > 0) {
      const i = Math.floor(this.rng() * rest.length);
      this.key.push(`o${i}`);
      out.push(rest.splice(i, 1)[0]!);
    }
    return out;
  }

  /** True with probability one half; part of the key. */
  flip(): boolean {
    const b = this.rng() < 0.5;
    this.key.push(b ? 'y' : 'n');
    return b;
  }
}

/** Surface noise outside the key: a lower-case first letter sometimes, as people type. */
function typed(rng: Rng, text: string): string {
  return rng() < 0.2 ? text[0]!.toLowerCase() + text.slice(1) : text;
}

/** `s` with its first letter upper-case. */
export function capitalised(s: string): string {
  return s[0]!.toUpperCase() + s.slice(1);
}

// ---- the arithmetic tasks ---------------------------------------------------------------------

/** Frames around an expression that reads as a noun ("{e}" is the expression). */
const ASK = [
  'What is {e}?', "What's {e}?", 'Calculate {e}.', 'compute {e}', 'Work out {e}.', 'How much is {e}?', '{e} = ?', '{e}=?',
  '{e}', 'Find {e}.', 'Please calculate {e}.', 'Can you work out {e}?', '{e}?', 'Tell me {e}.', 'Q: {e}', 'what is {e}',
];

/** The operations as expressions ({a} and {b} are the operands, in the order the code uses them). */
const EXPRESSIONS: Record<ArithmeticTask, string[]> = {
  add: ['{a} + {b}', '{a}+{b}', '{a} plus {b}', 'the sum of {a} and {b}', '{a} and {b} added together', 'the total of {a} and {b}', '{a} added to {b}'],
  subtract: ['{a} - {b}', '{a}-{b}', '{a} minus {b}', 'the difference between {a} and {b}', '{a} take away {b}', '{a} less {b}', '{b} subtracted from {a}'],
  multiply: ['{a} x {b}', '{a} * {b}', '{a}*{b}', '{a}×{b}', '{a} times {b}', 'the product of {a} and {b}', '{a} multiplied by {b}'],
  divide: ['{a} / {b}', '{a}/{b}', '{a} ÷ {b}', '{a} divided by {b}', 'the quotient of {a} and {b}', '{a} over {b}', '{a} divided into {b} parts'],
};

/** The operations as commands. */
const COMMANDS: Record<ArithmeticTask, string[]> = {
  add: ['Add {a} and {b}', 'Add {a} to {b}', 'Sum {a} and {b}', 'Add up {a} and {b}'],
  subtract: ['Subtract {b} from {a}', 'Take {b} away from {a}', 'Deduct {b} from {a}', 'Take {b} off {a}'],
  multiply: ['Multiply {a} by {b}', 'Multiply {a} and {b}', 'Times {a} by {b}'],
  divide: ['Divide {a} by {b}', 'Split {a} into {b} equal parts', 'Share {a} equally between {b}'],
};
const COMMAND_ENDS = ['.', '', ', please.', ' for me.'];

/** A quantity story ({u} the unit) and the questions it can end with. */
interface Story {
  units: string[];
  contexts: string[];
  questions: string[];
}
const STORIES: Record<ArithmeticTask, Story> = {
  add: {
    units: ['mg', 'mL', 'g'],
    contexts: [
      'A patient took {a} {u} in the morning and {b} {u} at night.', 'Intake was {a} {u} orally and {b} {u} IV.', 'Two bags: {a} {u} and {b} {u}.',
      'Doses of {a} {u} and {b} {u} were given.', 'The first bag had {a} {u}, the second {b} {u}.', '{a} {u} yesterday and {b} {u} today.',
    ],
    questions: ['How many {u} in total?', 'What is the total?', 'Total in {u}?', 'How much altogether?', 'What do they add up to?', 'Sum?', 'How much is that in all?'],
  },
  subtract: {
    units: ['mg', 'mL', 'kg'],
    contexts: [
      'The bag held {a} {u} and {b} {u} has run in.', 'Daily limit {a} {u}, already given {b} {u}.', 'Started with {a} {u} and used {b} {u}.',
      'Stock was {a} {u}; {b} {u} were dispensed.', 'Intake {a} {u}, output {b} {u}.', 'It went from {a} {u} down to {b} {u}.',
    ],
    questions: ['How many {u} are left?', 'How much remains?', 'What is the difference?', 'Difference in {u}?', 'What is the balance in {u}?', 'How many {u} remain?'],
  },
  multiply: {
    units: ['mg', 'mL', 'mcg'],
    contexts: [
      '{a} tablets of {b} {u} each.', '{a} doses of {b} {u} each.', '{a} vials, each holding {b} {u}.', 'Running {b} {u} per hour for {a} hours.',
      'Each dose is {b} {u}, given {a} times.', '{b} {u} per dose, {a} doses.',
    ],
    questions: ['How many {u} in total?', 'What is the total?', 'Total in {u}?', 'How much altogether?', 'How many {u} is that?'],
  },
  divide: {
    units: ['mg', 'mL', 'g'],
    contexts: [
      'Split {a} {u} into {b} equal doses.', '{a} {u} shared over {b} hours.', 'A {a} {u} daily dose given in {b} parts.', '{a} {u} divided into {b} syringes.',
      '{a} {u} over {b} doses.', '{a} {u} spread evenly across {b} bags.',
    ],
    questions: ['How many {u} each?', 'How much each?', 'What is each part?', '{u} per part?', 'How many {u} per dose?', 'Amount per share?'],
  },
};

export type ArithmeticTask = 'add' | 'subtract' | 'multiply' | 'divide';

/** An arithmetic question: {a} and {b} the operands as written; the unit its answer carries (a story's, or none). */
export function arithmeticPhrasing(task: ArithmeticTask, rng: Rng, a: string, b: string): Phrasing & { unit: string } {
  const kind = rng() < 0.45 ? 'ask' : rng() < 0.35 ? 'command' : 'story';
  const story = STORIES[task];
  const unit = kind === 'story' ? story.units[Math.floor(rng() * story.units.length)]! : '';
  const f = new Frame(rng, { a, b, u: unit });
  let text: string;
  if (kind === 'ask') {
    const e = f.choose(EXPRESSIONS[task]);
    text = f.choose(ASK, { e });
  } else if (kind === 'command') {
    text = f.choose(COMMANDS[task]) + f.choose(COMMAND_ENDS);
  } else {
    const context = f.choose(story.contexts);
    const question = f.choose(story.questions);
    text = f.flip() ? `${context} ${question}` : `${question} ${context}`;
  }
  return { key: `${task}:${kind}:${f.key.join('.')}`, text: typed(rng, capitalised(text)), unit };
}

// ---- unit conversion --------------------------------------------------------------------------

/** {a} the amount, {u} its unit (glued to the amount or not), {t} the target unit. */
const CONVERT_FRAMES = [
  'Convert {q} to {t}', 'How many {t} are in {q}', '{q} in {t}', 'What is {q} in {t}', 'What is {q} expressed in {t}', '{q} = ? {t}',
  '{q} to {t}', 'change {q} into {t}', 'Express {q} in {t}', '{q} equals how many {t}', 'How much is {q} in {t}', '{q} is how many {t}',
  'Please convert {q} into {t}', 'I have {q}; what is it in {t}', 'The label says {q}. How much is that in {t}', 'Give {q} in {t}',
];
const CONVERT_ENDS = ['?', '.', ''];

export function convertPhrasing(rng: Rng, amount: string, from: string, to: string): Phrasing {
  const glued = rng() < 0.25;
  const f = new Frame(rng, { q: glued ? `${amount}${from}` : `${amount} ${from}`, t: to });
  const text = f.choose(CONVERT_FRAMES) + f.choose(CONVERT_ENDS);
  return { key: `convert:${glued ? 'g' : 's'}.${f.key.join('.')}`, text: typed(rng, capitalised(text)) };
}

// ---- questions stated as facts (dose, infusion, BMI) ------------------------------------------

const SEPARATORS = [', ', '; ', ', ', ' and ', '. '];

/** Facts in any order, joined, with the question before or after them. */
function facts(f: Frame, rng: Rng, parts: readonly string[][], questions: readonly string[]): string {
  const stated = f.order(parts).map((p) => f.choose(p));
  const sep = f.choose(SEPARATORS);
  const body = sep === '. ' ? stated.map(capitalised).join(sep) : stated.join(sep);
  const question = f.choose(questions);
  return f.flip() ? `${capitalised(body)}${/[.?]$/.test(body) ? '' : '.'} ${question}` : `${question} ${capitalised(body)}${rng() < 0.5 ? '.' : ''}`;
}

const DOSE_PER_KG = [
  '{d} mg/kg', 'dose {d} mg/kg', '{d} mg per kg', '{d} mg/kg/dose', 'order {d} mg/kg', 'prescribed {d} mg/kg', '{d} milligrams per kilogram',
  '{d}mg/kg', 'drug at {d} mg/kg', 'give {d} mg/kg',
];
const DOSE_WEIGHT = [
  '{w} kg', 'weight {w} kg', 'patient weighs {w} kg', 'a {w} kg patient', '{w} kg patient', 'patient {w} kg', 'weighing {w} kg', '{w}kg',
  '{w} kilograms', 'body weight {w} kg', 'the child is {w} kg',
];
const DOSE_MAX = [
  'max {m} mg', 'maximum {m} mg', 'not more than {m} mg', 'capped at {m} mg', 'ceiling {m} mg', 'max dose {m} mg', 'no more than {m} mg per dose',
  'maximum single dose {m} mg', 'max {m}mg', 'up to {m} mg',
];
const DOSE_QUESTIONS = [
  'What dose?', 'How many mg?', 'Dose in mg?', 'What do I give?', 'Dose?', 'Calculate the dose.', 'What is the dose?', 'How much should be given?',
  'How many mg should I give?', 'What is the weight-based dose?',
];

/** A weight-based dose: {d} mg/kg, {w} kg, {m} mg maximum. */
export function dosePhrasing(rng: Rng, d: string, w: string, m: string): Phrasing {
  const f = new Frame(rng, { d, w, m });
  const text = facts(f, rng, [DOSE_PER_KG, DOSE_WEIGHT, DOSE_MAX], DOSE_QUESTIONS);
  return { key: `dose:${f.key.join('.')}`, text: typed(rng, text) };
}

const INFUSION_CONCENTRATION = [
  '{a} mg in {b} mL', '{a} mg/{b} mL', '{a} mg / {b} mL', 'a bag of {a} mg in {b} mL', '{a} mg diluted in {b} mL', '{a} mg made up to {b} mL',
  'a {b} mL bag with {a} mg', 'concentration {a} mg in {b} mL', 'the syringe holds {a} mg in {b} mL', '{a}mg in {b}mL', 'drug {a} mg in {b} mL',
];
const INFUSION_ORDER = [
  'order {r} mg/h', '{r} mg/h', 'to give {r} mg per hour', 'dose {r} mg/hr', 'run at {r} mg an hour', 'ordered {r} mg/h', 'deliver {r} mg/h',
  '{r} mg per hour', '{r}mg/h', 'the order is {r} mg/h',
];
const INFUSION_QUESTIONS = [
  'What rate in mL/h?', 'Pump rate?', 'How many mL/h?', 'mL/hr?', 'Infusion rate (mL/h)?', 'What is the infusion rate?',
  'Set the pump to how many mL per hour?', 'Rate in mL/h?', 'How fast do I run it in mL/h?', 'What mL/h?',
];

/** An infusion rate: {a} mg of drug in {b} mL, {r} mg/h ordered. */
export function infusionPhrasing(rng: Rng, a: string, b: string, r: string): Phrasing {
  const f = new Frame(rng, { a, b, r });
  const text = facts(f, rng, [INFUSION_CONCENTRATION, INFUSION_ORDER], INFUSION_QUESTIONS);
  return { key: `infusion:${f.key.join('.')}`, text: typed(rng, text) };
}

const BMI_WEIGHT = ['{w} kg', 'weight {w} kg', 'weighs {w} kg', 'weighing {w} kg', '{w}kg', 'mass {w} kg', 'a {w} kg adult'];
const BMI_HEIGHT = ['{h} {u}', 'height {h} {u}', '{h} {u} tall', '{h}{u}', 'is {h} {u} tall', 'height of {h} {u}', 'stands {h} {u}'];
const BMI_QUESTIONS = [
  'BMI?', 'What is the BMI?', 'Calculate BMI.', 'Body mass index?', 'Work out the BMI.', 'What BMI does that give?', "What's the BMI?", 'bmi?',
  'Compute the body mass index.',
];

/** A BMI: {w} kg, {h} in the unit {u} (m or cm). */
export function bmiPhrasing(rng: Rng, w: string, h: string, u: string): Phrasing {
  const f = new Frame(rng, { w, h, u });
  const text = facts(f, rng, [BMI_WEIGHT, BMI_HEIGHT], BMI_QUESTIONS);
  return { key: `bmi:${f.key.join('.')}`, text: typed(rng, text) };
}

// ---- a dose from the documents -------------------------------------------------------------------

const LOOKUP_DOSE_ASKS = [
  'What dose of {d}', 'How many mg of {d}', '{d} dose', 'Which {d} dose', 'Dose of {d} in mg', 'What single dose of {d}', 'Work out the {d} dose',
  'Calculate the weight-based {d} dose', 'How much {d}', 'Using the monograph, what {d} dose',
];
const LOOKUP_DOSE_FOR = [
  'for a {w} kg child', 'for {w} kg', 'for a patient of {w} kg', 'for someone weighing {w} kg', 'at {w} kg', 'for a weight of {w} kilograms',
  'for {w}kg', 'for a {w} kg patient',
];
const LOOKUP_DOSE_ENDS = ['?', '.', '', ', respecting the maximum?', ' per dose?'];
const LOOKUP_DOSE_PATIENT = ['Patient is {w} kg.', '{w} kg child.', 'The child weighs {w} kg.', 'Weight {w} kg.', 'A {w} kg patient.'];
const LOOKUP_DOSE_QUESTIONS = [
  'What dose of {d}?', 'How many mg of {d}?', '{d} dose?', 'Dose of {d} in mg?', 'What single dose of {d} do I give?',
  'Look up {d} and give the dose in mg.', 'How much {d} per dose?',
];

/** A weight-based dose whose mg/kg and maximum the model looks up: {d} the drug, {w} kg. */
export function doseLookupPhrasing(rng: Rng, d: string, w: string): Phrasing {
  const f = new Frame(rng, { d, w });
  const text = f.flip()
    ? `${f.choose(LOOKUP_DOSE_ASKS)} ${f.choose(LOOKUP_DOSE_FOR)}${f.choose(LOOKUP_DOSE_ENDS)}`
    : `${f.choose(LOOKUP_DOSE_PATIENT)} ${f.choose(LOOKUP_DOSE_QUESTIONS)}`;
  return { key: `lookup-dose:${f.key.join('.')}`, text: typed(rng, capitalised(text)) };
}

/** Draws phrasings until one of the split comes up (the draws are seeded, so this is deterministic). */
export function phrasingOf<P extends Phrasing>(split: Split, draw: () => P): P {
  for (let tries = 0; tries < 1000; tries++) {
    const p = draw();
    if (frameSplit(p.key) === split) return p;
  }
  throw new Error(`phrasing: no ${split} frame in 1000 draws`);
}

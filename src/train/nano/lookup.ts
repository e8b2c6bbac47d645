// The facts gpt-oss-nano looks up in its documents (examples/nano-docs), the questions that ask
// for them, and the out-of-domain questions with the reply that says what it can help with. The
// values here are what the documents state; the corpus finds each fact's line in the page the real
// browser shows and fails if it is not there, so a document edit cannot silently disagree.
import { literal, min, mul, named, printed, round } from './python.ts';
import { capitalised, doseLookupPhrasing, phrasingOf } from './phrasing.ts';
import { drawNumber, pick, templatesOf, writeNumber, type Rng, type Split } from './tasks.ts';

export type FactKind = 'max-single' | 'max-daily' | 'child-dose' | 'strength';

export interface Fact {
  kind: FactKind;
  /** The document line's text after "- ", up to and including the value and unit. */
  line: string;
  value: number;
  unit: string;
}

export interface Drug {
  name: string;
  /** The document's title, as search results and the opened page show it. */
  title: string;
  facts: Fact[];
}

export const DRUGS: readonly Drug[] = [
  {
    name: 'paracetamol', title: 'Paracetamol (acetaminophen) monograph', facts: [
      { kind: 'child-dose', line: 'Child dose: 15 mg/kg', value: 15, unit: 'mg/kg' },
      { kind: 'max-single', line: 'Maximum single dose: 1000 mg', value: 1000, unit: 'mg' },
      { kind: 'max-daily', line: 'Maximum daily dose (adults): 4000 mg', value: 4000, unit: 'mg' },
      { kind: 'strength', line: 'Oral suspension strength: 120 mg per 5 mL', value: 120, unit: 'mg per 5 mL' },
    ],
  },
  {
    name: 'ibuprofen', title: 'Ibuprofen monograph', facts: [
      { kind: 'child-dose', line: 'Child dose: 10 mg/kg', value: 10, unit: 'mg/kg' },
      { kind: 'max-single', line: 'Maximum single dose: 400 mg', value: 400, unit: 'mg' },
      { kind: 'max-daily', line: 'Maximum daily dose (adults, without supervision): 1200 mg', value: 1200, unit: 'mg' },
      { kind: 'strength', line: 'Oral suspension strength: 100 mg per 5 mL', value: 100, unit: 'mg per 5 mL' },
    ],
  },
  {
    name: 'amoxicillin', title: 'Amoxicillin monograph', facts: [
      { kind: 'child-dose', line: 'Child dose: 25 mg/kg', value: 25, unit: 'mg/kg' },
      { kind: 'max-single', line: 'Maximum single dose: 1000 mg', value: 1000, unit: 'mg' },
      { kind: 'max-daily', line: 'Maximum daily dose: 3000 mg', value: 3000, unit: 'mg' },
      { kind: 'strength', line: 'Oral suspension strength: 250 mg per 5 mL', value: 250, unit: 'mg per 5 mL' },
    ],
  },
  {
    name: 'gentamicin', title: 'Gentamicin monograph', facts: [
      { kind: 'child-dose', line: 'Dose: 7 mg/kg', value: 7, unit: 'mg/kg' },
      { kind: 'max-single', line: 'Maximum single dose: 560 mg', value: 560, unit: 'mg' },
      { kind: 'strength', line: 'Injection strength: 40 mg per mL', value: 40, unit: 'mg per mL' },
    ],
  },
];

/** How a question names each fact, and the words of the search query. */
const FACT_WORDS: Record<FactKind, { phrases: string[]; query: string }> = {
  'max-single': { phrases: ['maximum single dose', 'max dose per dose', 'highest single dose'], query: 'maximum single dose' },
  'max-daily': { phrases: ['maximum daily dose', 'max dose in 24 hours', 'daily maximum'], query: 'maximum daily dose' },
  'child-dose': { phrases: ['dose per kg', 'mg/kg dose', 'weight-based dose'], query: 'dose mg/kg' },
  'strength': { phrases: ['strength', 'concentration', 'formulation strength'], query: 'strength' },
};

const LOOKUP_TEMPLATES: ((drug: string, fact: string) => string)[] = [
  (d, f) => `What is the ${f} of ${d}?`,
  (d, f) => `According to the documents, what is the ${f} for ${d}?`,
  (d, f) => `${d}: ${f}?`,
  (d, f) => `Look up the ${f} of ${d}.`,
  (d, f) => `What does the monograph say is the ${f} of ${d}?`,
  (d, f) => `Can you check the ${f} for ${d} in the docs?`,
  (d, f) => `${f} of ${d} please`,
  (d, f) => `I need the ${f} for ${d}. What is it?`,
  (d, f) => `Find the ${f} of ${d} in the local documents.`,
  (d, f) => `What's the ${d} ${f}?`,
];

export interface LookupProblem {
  template: string;
  question: string;
  drug: Drug;
  fact: Fact;
  query: string;
  phrase: string;
}

export function lookupProblem(rng: Rng, split: Split): LookupProblem {
  const index = pick(rng, templatesOf(LOOKUP_TEMPLATES.length, split));
  const drug = pick(rng, DRUGS);
  const fact = pick(rng, drug.facts);
  const words = FACT_WORDS[fact.kind];
  const phrase = pick(rng, words.phrases);
  const name = rng() < 0.3 ? capitalised(drug.name) : drug.name;
  return { template: `lookup.${index}`, question: LOOKUP_TEMPLATES[index]!(name, phrase), drug, fact, query: `${drug.name} ${words.query}`, phrase };
}

// ---- a dose from the documents -------------------------------------------------------------------

export interface DoseLookupProblem {
  template: string;
  question: string;
  drug: Drug;
  perKg: Fact;
  max: Fact;
  kg: number;
  query: string;
  code: string;
  printed: string;
  answer: number;
  /** The mg/kg product before the cap. */
  product: number;
}

/** A weight-based dose whose mg/kg and maximum single dose the model reads in the drug's monograph. */
export function doseLookupProblem(rng: Rng, split: Split): DoseLookupProblem {
  const drug = pick(rng, DRUGS);
  const perKg = drug.facts.find((f) => f.kind === 'child-dose')!;
  const max = drug.facts.find((f) => f.kind === 'max-single')!;
  const kg = drawNumber(rng, split, 3, 60, rng() < 0.4 ? 1 : 0);
  const product = round(mul(literal(perKg.value), literal(kg)), 2);
  const dose = min(named('dose', product), literal(max.value));
  const name = rng() < 0.3 ? capitalised(drug.name) : drug.name;
  const weight = writeNumber(rng, kg);
  const frame = phrasingOf(split, () => doseLookupPhrasing(rng, name, weight));
  return {
    template: frame.key, question: frame.text, drug, perKg, max, kg,
    query: `${drug.name} dose mg/kg maximum`, code: `dose = ${product.code}\nprint(${dose.code})`, printed: printed(dose), answer: dose.value, product: product.value,
  };
}

// ---- out of domain -----------------------------------------------------------------------------

const OUT_OF_DOMAIN_QUESTIONS = [
  'Write a poem about the sea.',
  'Who won the football World Cup in 2010?',
  'What is the capital of France?',
  'Recommend a good movie for tonight.',
  'Tell me a joke.',
  'How do I fix a flat bicycle tyre?',
  'Translate "good morning" into Spanish.',
  'What should I cook for dinner?',
  'Explain how a car engine works.',
  'Who painted the Mona Lisa?',
  'What is the meaning of life?',
  'Help me write a cover letter.',
  'What is the weather like tomorrow?',
  'Summarise the plot of Hamlet.',
  'Which programming language should I learn first?',
  'Write a haiku about autumn.',
  'Who wrote Pride and Prejudice?',
  'What is the tallest mountain in the world?',
  'Give me a recipe for pancakes.',
  'Can you tell me a story?',
  'How do I learn to play the guitar?',
  'What time is it in Tokyo?',
  'Suggest a name for my dog.',
  'Tell me something funny.',
  'What is the best phone to buy?',
  'Plan a holiday in Italy for me.',
  'How far away is the Moon?',
  'Who is the president of Brazil?',
  'Write an email to my landlord.',
  'What are the rules of chess?',
];

export const OUT_OF_DOMAIN_REPLIES = [
  'I can only help with clinical arithmetic: doses by weight, unit conversions, infusion rates, BMI and drug facts from the local documents.',
  'That is outside what I do. I help with clinical calculations (doses, unit conversions, infusion rates, BMI) and looking up drug facts in the local documents.',
  'Sorry, I cannot help with that. Ask me a clinical arithmetic question: a weight-based dose, a unit conversion, an infusion rate, a BMI, or a drug fact from the documents.',
];

export interface OutOfDomainProblem {
  template: string;
  question: string;
  reply: string;
}

/** Held-out questions are every fifth one, as for templates. */
export function outOfDomainProblem(rng: Rng, split: Split): OutOfDomainProblem {
  const index = pick(rng, templatesOf(OUT_OF_DOMAIN_QUESTIONS.length, split));
  return { template: `out-of-domain.${index}`, question: OUT_OF_DOMAIN_QUESTIONS[index]!, reply: pick(rng, OUT_OF_DOMAIN_REPLIES) };
}

// The held-out scorer on hand-made completions: a right answer through the right tool, a wrong
// number, a missing or wrong tool call, text that is not harmony, a browser lookup, an
// out-of-domain reply, and the shares per reasoning effort.
import { describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { numbersIn, scoreCompletion, scoreHeldout, statesNumber, type ScoredItem } from '../../src/train/nano/score.ts';

const DOSE: ScoredItem = { id: 'd', effort: 'low', tool: 'python', answer: 337.5, unit: 'mg', code: 'dose = round(15 * 22.5, 2)\nprint(min(dose, 1000))' };
const LOOKUP: ScoredItem = { id: 'l', effort: 'medium', tool: 'browser', answer: 400, unit: 'mg' };
const OFF: ScoredItem = { id: 'o', effort: 'high', tool: null };

const analysis = (t: string): string => `<|channel|>analysis<|message|>${t}<|end|><|start|>assistant`;
const python = (code: string, out: string): string =>
  ` to=python<|channel|>analysis code<|message|>${code}<|call|><|start|>python to=assistant<|channel|>analysis<|message|>${out}\n<|end|><|start|>assistant`;
const final = (t: string): string => `<|channel|>final<|message|>${t}<|return|>`;

suite('the nano held-out scorer', () => {
  it('numbers in text and rounding to the answer\'s decimals', () => {
    assert.deepEqual(numbersIn('Give 1,250 mg, then .5 mL 【1†L9】 or 2'), [1250, 0.5, 2]);
    assert.ok(statesNumber(337.5, 337.5));
    assert.ok(statesNumber(337.50000000000006, 337.5));
    assert.ok(!statesNumber(2.675, 2.68)); // 2.675 is stored just below the tie, so it rounds to 2.67
    assert.ok(statesNumber(12.3456, 12.35));
    assert.ok(!statesNumber(337, 337.5));
  });

  it('the right code and answer score on every measure', () => {
    const s = scoreCompletion(DOSE, analysis('15 mg/kg x 22.5 kg.') + python(DOSE.code!, '337.5') + final('The dose is 337.5 mg.'));
    assert.deepEqual(s, { id: 'd', effort: 'low', valid: true, toolCorrect: true, answerCorrect: true });
  });

  it('other code is right when the tool printed the true value; a wrong number or unit is not', () => {
    const other = python('print(min(15 * 22.5, 1000))', '337.5');
    assert.equal(scoreCompletion(DOSE, other + final('337.5 mg')).toolCorrect, true);
    const wrong = scoreCompletion(DOSE, python('print(15 * 2.25)', '33.75') + final('33.75 mg'));
    assert.deepEqual([wrong.valid, wrong.toolCorrect, wrong.answerCorrect], [true, false, false]);
    assert.match(wrong.problem!, /no correct python call/);
    // An error quoting the failing line holds the operands, not a result.
    const error = '  File "<stdin>", line 1\n    print(round(337.5 / (1000 / 1000),, 2))\n                                     ^\nSyntaxError: invalid syntax';
    assert.equal(scoreCompletion(DOSE, python('print(round(337.5 / (1000 / 1000),, 2))', error) + final('337.5 mg')).toolCorrect, false);
    assert.equal(scoreCompletion(DOSE, python('print(15 * 22.5, 15)', '337.5 15') + final('337.5 mg')).toolCorrect, false);
    const noUnit = scoreCompletion(DOSE, python(DOSE.code!, '337.5') + final('It is 337.5.'));
    assert.deepEqual([noUnit.toolCorrect, noUnit.answerCorrect], [true, false]);
  });

  it('an answer without the tool call: right number, wrong tool measure', () => {
    const s = scoreCompletion(DOSE, analysis('Easy.') + final('337.5 mg'));
    assert.deepEqual([s.valid, s.toolCorrect, s.answerCorrect], [true, false, true]);
  });

  it('text that is not harmony, or that stops before a final answer, is invalid', () => {
    const broken = scoreCompletion(DOSE, '<|channel|>final The dose is 337.5 mg.<|return|>');
    assert.deepEqual([broken.valid, broken.toolCorrect, broken.answerCorrect], [false, false, false]);
    assert.match(broken.problem!, /not valid harmony/);
    const unfinished = scoreCompletion(DOSE, analysis('15 x 22.5') + python(DOSE.code!, '337.5').replace(/<\|start\|>assistant$/, ''));
    assert.equal(unfinished.valid, false);
    assert.match(unfinished.problem!, /final answer/);
    const badChannel = scoreCompletion(DOSE, '<|channel|>thinking<|message|>x<|end|><|start|>assistant' + final('337.5 mg'));
    assert.equal(badChannel.valid, false);
  });

  it('a lookup needs a search then an open; out of domain needs no tool and says what it helps with', () => {
    const search = ' to=browser.search<|channel|>analysis code<|message|>{"query":"ibuprofen maximum single dose"}<|call|><|start|>browser.search to=assistant<|channel|>analysis<|message|>[0] results<|end|><|start|>assistant';
    const open = ' to=browser.open<|channel|>analysis code<|message|>{"id":0}<|call|><|start|>browser.open to=assistant<|channel|>analysis<|message|>[1] Ibuprofen\nL10: - Maximum single dose: 400 mg.<|end|><|start|>assistant';
    assert.deepEqual(scoreCompletion(LOOKUP, search + open + final('The maximum single dose is 400 mg 【1†L10】.')), { id: 'l', effort: 'medium', valid: true, toolCorrect: true, answerCorrect: true });
    assert.equal(scoreCompletion(LOOKUP, search + final('400 mg')).toolCorrect, false);
    // A citation's numbers are no answer: line 400 cited, 401 stated.
    assert.equal(scoreCompletion(LOOKUP, search + open + final('It is 401 mg 【1†L400】.')).answerCorrect, false);
    assert.deepEqual(scoreCompletion(OFF, analysis('Out of scope.') + final('I can only help with clinical arithmetic.')), { id: 'o', effort: 'high', valid: true, toolCorrect: true, answerCorrect: true });
    // A dose from the documents needs the lookup and the computation.
    const both: ScoredItem = { id: 'b', effort: 'low', tool: 'browser+python', answer: 180, unit: 'mg', code: 'dose = round(10 * 18, 2)\nprint(min(dose, 400))' };
    const compute = python(both.code!, '180');
    assert.equal(scoreCompletion(both, search + open + compute + final('Give 180 mg 【1†L9】.')).toolCorrect, true);
    assert.equal(scoreCompletion(both, compute + final('Give 180 mg.')).toolCorrect, false);
    assert.equal(scoreCompletion(both, search + open + final('Give 180 mg.')).toolCorrect, false);
    const eager = scoreCompletion(OFF, python('print(1)', '1') + final('1'));
    assert.deepEqual([eager.toolCorrect, eager.answerCorrect], [false, false]);
  });

  it('shares per effort and overall; a missing completion counts as wrong', () => {
    const items: ScoredItem[] = [{ ...DOSE, task: 'dose' }, { ...DOSE, id: 'd2', task: 'dose' }, { ...LOOKUP, task: 'lookup' }, { ...OFF, task: 'out-of-domain' }];
    const completions = new Map([
      ['d', python(DOSE.code!, '337.5') + final('337.5 mg')],
      ['d2', final('300 mg')],
      ['o', final('I help with doses and conversions.')],
    ]);
    const r = scoreHeldout(items, completions);
    assert.deepEqual(r.byEffort.low, { count: 2, valid: 1, toolCorrect: 0.5, answerCorrect: 0.5 });
    assert.deepEqual(r.byEffort.medium, { count: 1, valid: 0, toolCorrect: 0, answerCorrect: 0 });
    assert.deepEqual(r.byEffort.high, { count: 1, valid: 1, toolCorrect: 1, answerCorrect: 1 });
    assert.deepEqual(r.overall, { count: 4, valid: 0.75, toolCorrect: 0.5, answerCorrect: 0.5 });
    assert.deepEqual(r.byTask, {
      dose: { count: 2, valid: 1, toolCorrect: 0.5, answerCorrect: 0.5 },
      lookup: { count: 1, valid: 0, toolCorrect: 0, answerCorrect: 0 },
      'out-of-domain': { count: 1, valid: 1, toolCorrect: 1, answerCorrect: 1 },
    });
    assert.equal(r.items.find((s) => s.id === 'l')!.problem, 'no completion');
  });
});

// Sequences that share a prefix (a system message) packed behind it: each is computed exactly as
// alone (the packed attention sees the prefix and the sequence's own tokens, at their own
// positions), so a training step gives the unpacked step's loss and gradients while the prefix
// runs once.
import { describe as suite, it } from 'node:test';
import assert from 'node:assert/strict';
import { nextTokenTargets } from '../../src/train/model.ts';
import { AdamW, packSharedPrefixes, trainStep, type Sequence } from '../../src/train/optim.ts';
import { TrainableModel } from '../../src/train/params.ts';
import { TINY } from './tiny.ts';

const prefix = [1, 4, 9, 16, 25, 36, 2, 7, 14, 21, 28, 35, 3, 11, 19, 27, 43, 5];
/** A sequence: `prefix`, then its own tokens, the loss on all but the first two of them. */
function sequence(tokens: readonly number[], own: readonly number[]): Sequence {
  const all = [...tokens, ...own];
  return { tokens: all, targets: nextTokenTargets(all, all.map((_, i) => i >= tokens.length + 2)) };
}

const batch: Sequence[] = [
  sequence(prefix, [6, 8, 10, 12, 30, 31, 32, 33, 34, 40]),
  sequence(prefix.slice(0, 17), [44, 45, 46, 47, 1, 2, 3]), // shares 17 tokens
  sequence([47, 46, ...prefix.slice(2)], [13, 17, 23, 29]), // shares nothing: runs alone
  sequence(prefix, [20, 22, 24, 26, 27, 29, 31, 33, 37]),
];

function gradients(model: TrainableModel, sharePrefix: boolean, precision: 'f64' | 'f32'): { loss: number; grads: Map<string, Float64Array> } {
  const optimizer = new AdamW(model.params(), { weightDecay: 0 });
  // lr 0 and no clipping: the step leaves the weights alone and its gradients in place.
  const { loss } = trainStep(model, optimizer, batch, 0, Infinity, { precision }, sharePrefix);
  return { loss, grads: new Map(model.params().map((p) => [p.name, p.grad.slice()])) };
}

suite('shared-prefix packing', () => {
  it('groups the sequences that share a prefix without targets, and packs each group once', () => {
    const packed = packSharedPrefixes(batch);
    assert.equal(packed.length, 2);
    const [group, alone] = packed;
    assert.equal(alone, batch[2], 'a sequence sharing nothing is left as it is');
    assert.equal(group!.layout!.prefix, 17, 'the prefix all three share');
    const own = [batch[0]!, batch[1]!, batch[3]!].map((s) => s.tokens.length - 17);
    assert.equal(group!.tokens.length, 17 + own[0]! + own[1]! + own[2]!);
    assert.deepEqual(group!.tokens.slice(0, 17), prefix.slice(0, 17));
    assert.equal(group!.layout!.segmentStart[17 + own[0]!], 17 + own[0]!, 'the second member starts after the first');
    assert.equal(group!.targets[17 + own[0]! - 1], -1, 'a member\'s last token predicts nothing, not the next member\'s first');
  });

  it('does not share a prefix position that has a target', () => {
    const trained = { tokens: [...prefix, 1, 2], targets: nextTokenTargets([...prefix, 1, 2]) };
    assert.equal(packSharedPrefixes([trained, batch[0]!]).length, 2);
  });

  for (const [precision, tolerance] of [['f64', 1e-10], ['f32', 1e-5]] as const) {
    it(`gives the unpacked step's loss and every gradient (${precision})`, () => {
      const plain = gradients(TrainableModel.random(TINY, 21), false, precision);
      const packed = gradients(TrainableModel.random(TINY, 21), true, precision);
      assert.ok(Math.abs(plain.loss - packed.loss) <= tolerance, `loss ${plain.loss} vs ${packed.loss}`);
      for (const [name, g] of plain.grads) {
        const h = packed.grads.get(name)!;
        const scale = Math.max(...g.map(Math.abs));
        assert.ok(scale > 0, `${name} has a gradient`);
        for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i]! - h[i]!) <= tolerance * scale, `${name}[${i}]: ${g[i]} vs ${h[i]}`);
      }
    });
  }
});

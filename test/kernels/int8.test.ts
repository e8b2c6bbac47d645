// The int8 copy of a bf16 matrix (Backend.int8Copy): the reference's keeps every weight within half
// a step of its group's scale, with codes in -127..127, the group's largest at +-127, zero groups
// all zero and ragged last groups; the wasm backend's kernel makes the same codes and scales.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createReferenceBackend } from '../../src/kernels/reference.ts';
import { createWasmBackend, type WasmBackend } from '../../src/kernels/wasm/index.ts';
import { bf16ToF32, dequantInt8Row, INT8_GROUP } from '../../src/tensor/index.ts';
import { seededRandom } from '../../src/random.ts';
import { assertNoFallbacks, randomBf16 } from './twins.ts';

const wasm: WasmBackend[] = [];
after(async () => {
  for (const b of wasm) await b.close();
});

test('the reference int8 copy keeps each weight within half a step of its group scale', async () => {
  const reference = createReferenceBackend();
  const r = seededRandom(9);
  for (const [rows, cols] of [[3, 32], [5, 70], [2, 2880], [1, 1]] as const) {
    const w = randomBf16(rows, cols, r);
    w.data.fill(0, 0, Math.min(cols, INT8_GROUP)); // a zero group
    const q = await reference.int8Copy!(w, 'w');
    assert.equal(q.scales.length, rows * Math.ceil(cols / INT8_GROUP));
    const exact = new Float32Array(cols), back = new Float32Array(cols);
    for (let row = 0; row < rows; row++) {
      bf16ToF32(w.data, row * cols, cols, exact);
      dequantInt8Row(q, row, back);
      for (let g = 0; g * INT8_GROUP < cols; g++) {
        const scale = q.scales[row * Math.ceil(cols / INT8_GROUP) + g]!;
        const c0 = g * INT8_GROUP, c1 = Math.min(cols, c0 + INT8_GROUP);
        let largest = 0;
        for (let c = c0; c < c1; c++) {
          const code = q.codes[row * cols + c]!;
          assert.ok(code >= -127 && code <= 127, `code ${code}`);
          largest = Math.max(largest, Math.abs(code));
          // Half a step, plus the f32 rounding of code * scale.
          assert.ok(Math.abs(back[c]! - exact[c]!) <= scale / 2 + 1e-6 * Math.abs(exact[c]!), `row ${row} col ${c}: ${back[c]} vs ${exact[c]}`);
        }
        if (row === 0 && g === 0) assert.equal(scale, 0, 'a zero group has scale 0');
        else assert.equal(largest, 127, 'the largest weight of a group takes the full code range');
      }
    }
  }
});

for (const threads of [1, 2]) {
  test(`the wasm int8 copy equals the reference's, ${threads} thread(s)`, async () => {
    const b = await createWasmBackend({ threads });
    wasm.push(b);
    const reference = createReferenceBackend();
    const r = seededRandom(19 + threads);
    for (const [rows, cols] of [[1, 32], [7, 64], [131, 2880], [2, 96]] as const) {
      const w = randomBf16(rows, cols, r, (bytes, label) => b.store.allocate(bytes, label));
      w.data.fill(0, 0, INT8_GROUP);
      const got = await b.int8Copy(w, 'w8'), want = await reference.int8Copy!(w, 'w8');
      assert.deepEqual(got.scales, want.scales, `scales ${rows}x${cols}`);
      assert.deepEqual(got.codes, want.codes, `codes ${rows}x${cols}`);
    }
    assertNoFallbacks(b);
  });
}

// GPU failures reach the user as one line naming the fix: out of GPU memory and buffers past the
// device's limits (from the error scopes' errors, injected here), and a lost device (a real one:
// work queued after its device is gone). Other GPU errors stay bugs with their message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../../src/errors.ts';
import { gpuFailure, webGpuAvailable } from '../../src/kernels/webgpu/device.ts';

class GPUOutOfMemoryError {
  constructor(readonly message: string) {}
}
class GPUValidationError {
  constructor(readonly message: string) {}
}

test('out of GPU memory and oversized buffers are user errors naming a smaller context', () => {
  for (const error of [
    new GPUOutOfMemoryError('Allocation failed\n - While calling [Device].CreateBuffer'),
    new GPUValidationError('Buffer size (8589934592) exceeds the max buffer size limit (4294967296).\n - While calling [Device].CreateBuffer([BufferDescriptor])'),
  ]) {
    const e = gpuFailure(error);
    assert.ok(e instanceof UserError && e.kind === 'memory', String(e));
    assert.doesNotMatch(e.message, /\n/);
    assert.match(e.message, /use a smaller --context or --backend wasm$/);
  }
  const bug = gpuFailure(new GPUValidationError('Binding size is smaller than the minimum binding size'));
  assert.ok(!(bug instanceof UserError));
  assert.match(bug.message, /^webgpu: Binding size/);
});

const available = await webGpuAvailable();
test('work on a lost device fails with one line', { skip: available.ok ? false : `no WebGPU adapter: ${available.ok ? '' : available.reason}` }, async () => {
  const { createWebGpuBackend } = await import('../../src/kernels/webgpu/index.ts');
  const backend = await createWebGpuBackend();
  await backend.close(); // destroys the device: it is lost from here on
  const x = new Float32Array(8).fill(1);
  await assert.rejects(
    async () => backend.rmsnorm(x, 1, new Float32Array(8).fill(1), 1e-5, new Float32Array(8)),
    (e: unknown) => e instanceof UserError && /^webgpu: the GPU device was lost \(.+\): start again, with a smaller --context or --backend wasm if it ran out of memory$/.test(e.message),
  );
});

// `--backend auto`'s choice from what the adapter says of itself: webgpu on a real GPU, wasm on a
// software rasteriser (Mesa's llvmpipe/lavapipe, SwiftShader, WARP, a fallback adapter) or when
// there is no adapter or no webgpu package, each with the reason the start-up line shows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adapterLine, chooseAutoBackend, isSoftwareAdapter } from '../../src/kernels/webgpu/device.ts';

test('software adapters are recognised from their info', () => {
  assert.equal(isSoftwareAdapter({ vendor: 'mesa', architecture: '', description: 'llvmpipe (LLVM 19.1.7, 256 bits)' }), true);
  assert.equal(isSoftwareAdapter({ vendor: 'google', architecture: 'swiftshader', description: 'SwiftShader Device (Subzero)' }), true);
  assert.equal(isSoftwareAdapter({ vendor: 'microsoft', description: 'Microsoft Basic Render Driver' }), true);
  assert.equal(isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100 80GB HBM3', isFallbackAdapter: true }), true);
  assert.equal(isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100 80GB HBM3' }), false);
  assert.equal(isSoftwareAdapter({ vendor: 'apple', architecture: 'metal-3', description: 'Apple M2' }), false);
  assert.equal(isSoftwareAdapter({ vendor: 'amd', architecture: 'rdna-3', description: 'AMD Radeon RX 7900 XTX (RADV NAVI31)' }), false);
});

test('auto takes webgpu on a real GPU and wasm otherwise, saying why', () => {
  const gpu = { vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100 80GB HBM3' };
  assert.deepEqual(chooseAutoBackend({ name: adapterLine(gpu), software: isSoftwareAdapter(gpu) }), { backend: 'webgpu', reason: 'nvidia hopper NVIDIA H100 80GB HBM3' });
  const soft = chooseAutoBackend({ name: 'mesa llvmpipe (LLVM 19.1.7, 256 bits)', software: true });
  assert.equal(soft.backend, 'wasm');
  assert.match(soft.reason, /software one \(mesa llvmpipe/);
  assert.deepEqual(chooseAutoBackend({ error: 'no WebGPU adapter found' }), { backend: 'wasm', reason: 'no WebGPU adapter found' });
});

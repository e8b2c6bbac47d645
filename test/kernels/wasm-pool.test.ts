// The kernel thread pool, offloading (as `gptoss serve` runs it), leaves the main thread's event
// loop free while its workers compute a large op, so a server answers requests during an engine step. The pool here runs a
// tiny hand-assembled kernel whose every slice spins until word 0 of the shared memory is set:
// only this thread sets it, and only after an HTTP exchange, so the run can settle only
// if that request was served while the run was pending. Ordered by events alone.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ThreadPool } from '../../src/kernels/wasm/pool.ts';
import { createWasmBackend } from '../../src/kernels/wasm/index.ts';

/**
 * (module (import "env" "memory" (memory 1 1 shared))
 *   (func (export "mem_stream_read") spin until i32 word 0 is set; after 2^31 turns give up and set word 1))
 * Giving up (seconds of spinning) turns a blocked main thread into a failure instead of a hang.
 */
const SPIN_UNTIL_SET = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
  0x02, 0x10, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x03, 0x01, 0x01, // import env.memory, shared 1..1
  0x03, 0x02, 0x01, 0x00, // one function of type 0
  0x07, 0x13, 0x01, 0x0f, ...new TextEncoder().encode('mem_stream_read'), 0x00, 0x00, // its export
  0x0a, 0x32, 0x01, 0x30, 0x01, 0x01, 0x7e, // code: one body of 48 bytes, one i64 local
  0x42, 0x80, 0x80, 0x80, 0x80, 0x08, 0x21, 0x00, // local 0 = 2^31
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x41, 0x00, 0xfe, 0x10, 0x02, 0x00, 0x04, 0x40, 0x0f, 0x0b, // if i32.atomic.load(0) != 0: return
  0x20, 0x00, 0x42, 0x01, 0x7d, 0x22, 0x00, 0x50, 0x0d, 0x01, // if --local 0 == 0: leave the block
  0x0c, 0x00, 0x0b, 0x0b, // continue, end loop, end block
  0x41, 0x04, 0x41, 0x01, 0xfe, 0x17, 0x02, 0x00, 0x0b, // i32.atomic.store(4, 1); end
]);

const pools: ThreadPool[] = [];
after(async () => {
  for (const p of pools) await p.close();
});

test('offloading, the pool answers an HTTP request while every slice of a kernel is still running', { timeout: 60_000 }, async () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const module = new WebAssembly.Module(SPIN_UNTIL_SET);
  const main = new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, (...args: number[]) => void>;
  const pool = new ThreadPool(module, [memory], 2, [main], true);
  pools.push(pool);
  await pool.ready;
  const flag = new Int32Array(memory.buffer);

  const server = createServer((_req, res) => res.end('served'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const running = pool.run('mem_stream_read', 0, [0, 0, 0]);
    assert.ok(running instanceof Promise, 'an offloaded run hands back a promise');
    let settled = false;
    const done = running.then(() => {
      settled = true;
    });
    const { port } = server.address() as AddressInfo;
    const reply = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await reply.text(), 'served');
    assert.equal(settled, false, 'the kernel is still running: its slices wait for the flag this thread sets next');
    Atomics.store(flag, 0, 1);
    await done;
    assert.equal(settled, true);
    assert.equal(Atomics.load(flag, 1), 0, 'no slice gave up waiting');
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('inline, the pool runs slice 0 on the calling thread and returns when every slice is done', async () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const module = new WebAssembly.Module(SPIN_UNTIL_SET);
  const main = new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, (...args: number[]) => void>;
  const pool = new ThreadPool(module, [memory], 2, [main], false);
  pools.push(pool);
  await pool.ready;
  // Set beforehand (inline, the main thread spins in slice 0 and could never set it).
  Atomics.store(new Int32Array(memory.buffer), 0, 1);
  assert.equal(pool.run('mem_stream_read', 0, [0, 0, 0]), undefined, 'an inline run returns nothing to await');
});

test('the wasm backend offloads when asked (gptoss serve does), not by default', async () => {
  const on = await createWasmBackend({ threads: 2, offload: true }), off = await createWasmBackend({ threads: 2 });
  try {
    assert.equal(on.offload, true);
    assert.equal(off.offload, false);
  } finally {
    await on.close();
    await off.close();
  }
});

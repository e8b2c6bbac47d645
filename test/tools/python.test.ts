// The python sandbox: prompt-injected code must not read host files, reach the network (even on
// 127.0.0.1), spawn processes or see the host environment; endless loops are killed by the
// wall-clock timeout; output and memory are capped; stateful and stateless modes behave like the
// reference; code that tears down the Python-level import blocker and reaches pyodide's FFI finds a
// JS side with nothing worth reaching. Interpreters are shared between probes where that is safe
// (each load costs seconds). No test waits on the clock: connection attempts are counted once a
// connection of the test's own has been accepted behind them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { NO_OUTPUT_WARNING, PythonTool, SandboxPool, STATELESS_DESCRIPTION, sandboxNodeFlags } from '../../src/tools/index.ts';
import { pythonToolNamespace } from '../../src/harmony/index.ts';

process.env.GPTOSS_SANDBOX_CANARY = 'canary-7f3a9c';
const PROJECT_FILE = resolve('package.json');
const projectText = readFileSync(PROJECT_FILE, 'utf8');

// A server on 127.0.0.1 that records the source port of every connection that reaches it.
const acceptedPorts: number[] = [];
const ownPorts = new Set<number>();
const accepted = new EventEmitter();
const sockets: Socket[] = [];
const server = createServer((sock) => {
  acceptedPorts.push(sock.remotePort!);
  accepted.emit('port', sock.remotePort);
  sockets.push(sock);
  sock.on('error', () => {}); // the test's own connections are dropped without reading the answer
  sock.end('HTTP/1.0 200 OK\r\n\r\nsecret-from-host-server');
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as { port: number }).port;

/**
 * Connections the server accepted from anyone but this test. The kernel queues connections to the
 * listening socket in order, so once a connection the test opens now has been accepted, every
 * attempt made before it (by code that has already returned) has been counted.
 */
async function foreignConnections(): Promise<number> {
  const own = connect(port, '127.0.0.1');
  own.on('data', () => {});
  own.on('error', () => {});
  await once(own, 'connect');
  const ownPort = own.localPort!;
  ownPorts.add(ownPort);
  if (!acceptedPorts.includes(ownPort)) {
    await new Promise<void>((res) => {
      const onPort = (p: number): void => {
        if (p !== ownPort) return;
        accepted.off('port', onPort);
        res();
      };
      accepted.on('port', onPort);
    });
  }
  own.destroy();
  return acceptedPorts.filter((p) => !ownPorts.has(p)).length;
}

const pool = new SandboxPool({ memoryMb: 256 }, 0);
const tool = new PythonTool({ stateful: true, timeoutMs: 8000, maxOutputChars: 2000, pool });
after(async () => {
  await tool.close();
  await pool.close();
  for (const s of sockets) s.destroy();
  server.close();
});

async function py(code: string): Promise<{ content: string; error?: string }> {
  return tool.run({ recipient: 'python', content: code, channel: 'analysis' });
}

test('the Node layer alone denies files, processes, workers and code generation', () => {
  const probe = `
    const results = {};
    const attempt = async (name, f) => { try { await f(); results[name] = 'ALLOWED'; } catch (e) { results[name] = 'denied'; } };
    const fs = await import('node:fs');
    await attempt('read-etc-passwd', () => fs.readFileSync('/etc/passwd'));
    await attempt('read-project', () => fs.readFileSync(${JSON.stringify(PROJECT_FILE)}));
    await attempt('write-tmp', () => fs.writeFileSync('/tmp/gptoss-sandbox-probe', 'x'));
    await attempt('spawn', async () => (await import('node:child_process')).execSync('id'));
    await attempt('worker', async () => new (await import('node:worker_threads')).Worker('1', { eval: true }));
    await attempt('eval', () => eval('1 + 1'));
    await attempt('function', () => new Function('return globalThis')());
    console.log(JSON.stringify(results));`;
  const r = spawnSync(process.execPath, [...sandboxNodeFlags(), '--input-type=module', '-e', probe], { env: {}, encoding: 'utf8' });
  const results = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, string>;
  assert.deepEqual(results, {
    'read-etc-passwd': 'denied', 'read-project': 'denied', 'write-tmp': 'denied', spawn: 'denied', worker: 'denied', eval: 'denied', function: 'denied',
  });
});

test('stateful mode keeps variables and shows the last expression, like a notebook', async () => {
  assert.equal((await py('x = 41')).content, NO_OUTPUT_WARNING);
  assert.equal((await py('print(x + 1)')).content, '42\n');
  assert.equal((await py('x')).content, '41\n');
  const tb = await py('def f():\n    raise ValueError("boom")\nf()');
  assert.equal(tb.content, 'Traceback (most recent call last):\n  File "<stdin>", line 3, in <module>\n  File "<stdin>", line 2, in f\nValueError: boom\n');
  assert.equal(tb.error, undefined); // a Python exception is ordinary output for the model
  assert.equal((await py('open("/mnt/data/notes.txt", "w").write("kept")\nprint(open("/mnt/data/notes.txt").read())')).content, 'kept\n');
});

test('injected code cannot read host files or see the host environment', async () => {
  const out = (await py(`
import os, sys
for path in ["/etc/passwd", ${JSON.stringify(PROJECT_FILE)}, "/proc/self/environ", "/root/.bashrc"]:
    try:
        data = open(path).read()
        print("READ", path, data[:200])
    except Exception as e:
        print("blocked", path, type(e).__name__)
print("root:", sorted(os.listdir("/")))
print("env:", dict(os.environ))
`)).content;
  assert.doesNotMatch(out, /READ/);
  assert.doesNotMatch(out, /root:x:0:0/);
  assert.ok(!out.includes(projectText.slice(0, 40)));
  assert.match(out, /blocked \/etc\/passwd FileNotFoundError/);
  assert.doesNotMatch(out, /'work'|'etc'|'usr'/);
  assert.doesNotMatch(out, /canary-7f3a9c|GPTOSS_SANDBOX_CANARY/);
});

test('injected code cannot reach a server on 127.0.0.1 (socket, urllib, http.client, js tricks)', async () => {
  const before = await foreignConnections();
  const out = (await py(`
import socket, urllib.request, http.client, sys
def attempt(name, f):
    try:
        r = f()
        print("REACHED", name, r)
    except BaseException as e:
        print("failed", name, type(e).__name__)
attempt("socket", lambda: socket.create_connection(("127.0.0.1", ${port}), timeout=2).recv(100))
attempt("urllib", lambda: urllib.request.urlopen("http://127.0.0.1:${port}/", timeout=2).read())
def via_http_client():
    c = http.client.HTTPConnection("127.0.0.1", ${port}, timeout=2)
    c.request("GET", "/")
    return c.getresponse().read()
attempt("http.client", via_http_client)
attempt("import js", lambda: __import__("js").fetch("http://127.0.0.1:${port}/"))
attempt("pyodide_js", lambda: __import__("pyodide_js"))
attempt("pyfetch", lambda: __import__("pyodide.http", fromlist=["pyfetch"]).pyfetch("http://127.0.0.1:${port}/"))
def unblock_and_import():
    # Remove the import blocker and the module tombstones, then try the bridges again.
    sys.meta_path[:] = [f for f in sys.meta_path if "Gptoss" not in type(f).__name__]
    for k in [k for k, v in sys.modules.items() if v is None]:
        del sys.modules[k]
    import js
    return js.fetch("http://127.0.0.1:${port}/")
attempt("unblocked js", unblock_and_import)
def run_js():
    import pyodide.code
    return pyodide.code.run_js("fetch('http://127.0.0.1:${port}/')")
attempt("run_js", run_js)
# Reaching a JS object through the garbage collector gives its Function constructor, which cannot
# compile code in the sandbox (no import('node:net'), no globalThis).
import gc
def via_gc():
    for m in [o for o in gc.get_objects() if type(o).__name__ == "module"]:
        for v in list(vars(m).values()):
            if type(v).__name__.startswith("JsProxy") or "JsProxy" in type(v).__name__:
                try:
                    make = v.constructor.constructor
                except Exception:
                    continue
                return make("return import('node:net').then(n => n.connect(${port}, '127.0.0.1'))")()
    raise LookupError("no JS object found")
attempt("gc Function", via_gc)
`)).content;
  assert.match(out, /^failed gc Function JsException/m, out);
  for (const name of ['socket', 'urllib', 'http.client', 'import js', 'pyodide_js', 'pyfetch', 'unblocked js', 'run_js']) {
    assert.match(out, new RegExp(`^failed ${name.replace('.', '\\.')} `, 'm'), out);
  }
  assert.doesNotMatch(out, /REACHED|secret-from-host-server/);
  // One more cell: anything the first one left queued in the interpreter's event loop has run.
  assert.equal((await py('print("after")')).content, 'after\n');
  assert.equal(await foreignConnections(), before, 'the host server saw a connection');
});

// The escape from the hardening report, step by step: drop the import blocker from sys.meta_path,
// hunt pyodide's FFI (_pyodide_core, JsProxy objects) through gc.get_objects(), make JS objects to
// get Object, Function and Error, try to compile code, to set Error.prepareStackTrace (whose call
// sites expose the receivers of the frames below), then walk every JS object reachable from what
// was found, looking for the global object, process, require, console and sockets.
const FFI_ESCAPE = `
import gc, json, sys, socket
report = {"core_found": False, "import_after_unblock": False, "jsproxies": 0, "function_ctor": "refused",
          "prepare_stack_trace": "refused", "call_sites": 0, "objects": 0, "object_prototype_reached": False,
          "dangerous": [], "reads": {}, "socket": "failed"}
sys.meta_path[:] = [f for f in sys.meta_path if "Gptoss" not in type(f).__name__]
for k in [k for k, v in sys.modules.items() if v is None]:
    del sys.modules[k]
try:
    import _pyodide_core
    report["import_after_unblock"] = True
except ImportError:
    pass
mods = {getattr(o, "__name__", "?"): o for o in gc.get_objects() if type(o).__name__ == "module"}
core = mods["_pyodide_core"]
report["core_found"] = True
JsProxy = mods["pyodide.ffi"].JsProxy
roots = [o for o in gc.get_objects() if isinstance(o, JsProxy) and not isinstance(o, type)]
for d in [o for o in gc.get_objects() if isinstance(o, dict)]:
    roots += [v for v in list(d.values()) if isinstance(v, JsProxy) and not isinstance(v, type)]
report["jsproxies"] = len(roots)
made = core.to_js({"a": [1]})
roots += [made, core.to_js([1]), core.to_js(b"x"), core.create_proxy(lambda: 1)]
Object = made.constructor
Function = Object.constructor
try:
    Function("return globalThis")()
    report["function_ctor"] = "ALLOWED"
except Exception:
    pass
def js_error():
    try:
        Object.defineProperty(1, "x", made)
    except Exception as e:
        return e.js_error
ErrorCtor = Object.getPrototypeOf(js_error().constructor)
roots.append(ErrorCtor)
sites = []
def prepare(error, call_sites):
    sites.extend(call_sites)
    return "captured"
try:
    ErrorCtor.prepareStackTrace = core.create_proxy(prepare)
except Exception:
    pass
if getattr(ErrorCtor, "prepareStackTrace", None) is not None:
    report["prepare_stack_trace"] = "SET"
js_error()
try:
    ErrorCtor.prepareStackTrace = None
except Exception:
    pass
report["call_sites"] = len(sites)
for site in sites:
    roots += [site.getThis(), site.getFunction()]
DANGER = {"globalThis", "process", "require", "module", "console", "Buffer", "fetch", "setTimeout", "WebAssembly",
          "_stdout", "_stderr", "_handle", "binding", "createConnection", "Socket", "mainModule", "initializeNodeSockFS"}
get_names = Object.getOwnPropertyNames
get_symbols = Object.getOwnPropertySymbols
describe = Object.getOwnPropertyDescriptor
proto_of = Object.getPrototypeOf
tag = Object.prototype.toString.call
seen = core.to_js(set())
queue = list(roots)
while queue and seen.size < 100000:
    o = queue.pop()
    if not isinstance(o, JsProxy) or seen.has(o):
        continue
    seen.add(o)
    if tag(o) == "[object PyProxy]":
        continue  # a Python object seen from JS: nothing there that Python does not have
    p = o
    while p is not None:
        try:
            keys = list(get_names(p)) + list(get_symbols(p))
        except Exception:
            break
        for n in keys:
            if isinstance(n, str) and n in DANGER:
                report["dangerous"].append(n + " on " + tag(p))
            try:
                d = describe(p, n)
            except Exception:
                continue
            getter = getattr(d, "get", None)
            queue += [getattr(d, "value", None), getter, getattr(d, "set", None)]
            if getter is not None:
                try:
                    queue.append(getter.call(o))
                except Exception:
                    pass
        queue.append(p)
        try:
            p = proto_of(p)
        except Exception:
            break
report["objects"] = seen.size
report["object_prototype_reached"] = bool(seen.has(Object.prototype))
for path in ["/etc/passwd", "PROJECT_FILE"]:
    try:
        open(path).read()
        report["reads"][path] = "READ"
    except Exception as e:
        report["reads"][path] = type(e).__name__
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).recv(100)
    report["socket"] = "REACHED"
except Exception:
    pass
print(json.dumps(report))
`;

test('the FFI escape (blocker removed, _pyodide_core found through gc) reaches nothing on the JS side', async () => {
  const before = await foreignConnections();
  const escapeTool = new PythonTool({ stateful: true, timeoutMs: 120_000, maxOutputChars: 20_000, pool });
  try {
    const code = FFI_ESCAPE.replace('PROJECT_FILE', PROJECT_FILE).replace('PORT', String(port));
    const out = (await escapeTool.run({ recipient: 'python', content: code })).content;
    const report = JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
    // The escape itself works: the Python layer is not the boundary.
    assert.equal(report.core_found, true, out);
    assert.equal(report.import_after_unblock, true, out);
    assert.ok((report.jsproxies as number) >= 1, out);
    assert.equal(report.object_prototype_reached, true, out);
    assert.ok((report.objects as number) >= 50, out);
    // And it gains nothing.
    assert.equal(report.function_ctor, 'refused');
    assert.equal(report.prepare_stack_trace, 'refused');
    assert.equal(report.call_sites, 0);
    assert.deepEqual(report.dangerous, []);
    assert.deepEqual(report.reads, { '/etc/passwd': 'FileNotFoundError', [PROJECT_FILE]: 'FileNotFoundError' });
    assert.equal(report.socket, 'failed');
    assert.equal((await escapeTool.run({ recipient: 'python', content: 'print("after")' })).content, 'after\n');
    assert.equal(await foreignConnections(), before, 'the host server saw a connection');
  } finally {
    await escapeTool.close();
  }
});

test('injected code cannot start processes', async () => {
  const out = (await py(`
import os, subprocess
def attempt(name, f):
    try:
        print("RAN", name, f())
    except BaseException as e:
        print("failed", name, type(e).__name__)
attempt("os.system", lambda: os.system("id"))
attempt("os.popen", lambda: os.popen("id").read())
attempt("subprocess", lambda: subprocess.run(["id"], capture_output=True).stdout)
attempt("fork", lambda: os.fork())
print("still alive")
`)).content;
  assert.doesNotMatch(out, /RAN|uid=/);
  assert.match(out, /failed os\.system[\s\S]*failed os\.popen[\s\S]*failed subprocess[\s\S]*failed fork[\s\S]*still alive/);
});

test('output is truncated with a note, and memory beyond the cap raises MemoryError', async () => {
  const big = (await py('print("a" * 50000)\nprint("END")')).content;
  assert.ok(big.length < 2200, `kept ${big.length} characters`);
  assert.match(big, /\[\.\.\. \d+ characters of output truncated \.\.\.\]/);
  assert.match(big, /^a+/);
  assert.match(big, /END\n$/);
  const mem = (await py('try:\n    b = bytearray(400 * 1024 * 1024)\n    print("ALLOCATED")\nexcept MemoryError:\n    print("MemoryError")')).content;
  assert.equal(mem, 'MemoryError\n');
  assert.equal((await py('print(x)')).content, '41\n'); // the interpreter survived
});

test('an endless loop is killed at the wall-clock limit and the interpreter restarts', async () => {
  // Its own tool with a short limit: the loop burns a core until it is killed.
  const short = new PythonTool({ stateful: true, timeoutMs: 2000, pool });
  const run = (code: string) => short.run({ recipient: 'python', content: code, channel: 'analysis' });
  try {
    assert.equal((await run('z = 5\nprint(z)')).content, '5\n');
    const r = await run('print("started")\nwhile True:\n    pass');
    assert.match(r.content, /^started\n\[ERROR\] Execution timed out after 2\.0 seconds and was stopped\. The interpreter was restarted/);
    assert.equal(r.error, 'timeout');
    const after = await run('print(z)');
    assert.match(after.content, /NameError: name 'z' is not defined/);
  } finally {
    await short.close();
  }
});

test('stateless mode: a fresh interpreter per call, and the official descriptions per mode', async () => {
  const statelessPool = new SandboxPool({}, 0);
  const stateless = new PythonTool({ pool: statelessPool, timeoutMs: 30_000 });
  try {
    assert.equal((await stateless.run({ recipient: 'python', content: 'y = 1\nprint(y)' })).content, '1\n');
    const second = await stateless.run({ recipient: 'python', content: 'print(y)' });
    assert.match(second.content, /NameError: name 'y' is not defined/);
    assert.equal((await stateless.run({ recipient: 'python', content: '2 + 2' })).content, NO_OUTPUT_WARNING); // a script prints nothing by itself
  } finally {
    await stateless.close();
    await statelessPool.close();
  }
  assert.equal(stateless.namespace().description, STATELESS_DESCRIPTION);
  assert.deepEqual(new PythonTool({ stateful: true, pool: statelessPool }).namespace(), pythonToolNamespace());
});

test('an aborted call rejects with the abort reason and its interpreter process exits', async () => {
  const abortPool = new SandboxPool({}, 0);
  try {
    // Through the tool: the call's promise rejects with the reason the caller gave.
    const tool2 = new PythonTool({ pool: abortPool, timeoutMs: 120_000 });
    const controller = new AbortController();
    const reason = new Error('user pressed ctrl-c');
    const pending = tool2.run({ recipient: 'python', content: 'while True:\n    pass' }, controller.signal);
    controller.abort(reason);
    await assert.rejects(pending, (e) => e === reason);
    await tool2.close();
    // On the interpreter itself: a booted one is killed by the abort of the call it was given.
    const proc = abortPool.acquire();
    await proc.ready;
    const looping = new AbortController();
    const stop = new Error('stop');
    const run = proc.run('while True:\n    pass', { stateful: false, timeoutMs: 120_000, maxOutputChars: 1000, signal: looping.signal });
    looping.abort(stop);
    await assert.rejects(run, (e) => e === stop);
    await proc.exitedPromise();
    assert.equal(proc.alive, false);
  } finally {
    await abortPool.close();
  }
});

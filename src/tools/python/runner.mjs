// The sandbox child process of the python tool (plain JS: it runs under Node's permission model,
// which only lets it read this file, the pyodide package and the boot snapshot, so it cannot go
// through tsx). With {"makeSnapshot": path} in its config it only writes the boot snapshot.
// Protocol on stdin/stdout, one JSON object per line:
//   parent -> child  {"id": n, "code": "...", "stateful": bool}
//   child -> parent  {"type": "ready"} once, then per run {"id": n, "chunk": "..."}* and
//                    {"id": n, "done": true, "status": s} (s: the cell's exit status, 0 when it ended normally)
// Everything the interpreter could use to reach the host is removed before the first user code:
// see docs/tools.md "Security model" for the layers and their limits.
import { constants as fsConstants, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

// The host process object, kept in this module's scope only (see the end of the setup).
const proc = process;
const stdout = proc.stdout;
const stdin = proc.stdin;
const config = JSON.parse(proc.argv[2] ?? '{}');
const pyodideDir = config.pyodideDir;
const maxWasmBytes = config.maxWasmBytes ?? 1024 * 1024 * 1024;

// Pyodide's NODEFS asks process.binding('constants') at load time, which the permission model denies;
// hand it the public fs constants and nothing else.
process.binding = (name) => {
  if (name === 'constants') return { fs: fsConstants };
  throw new Error(`process.binding('${name}') is not available in the sandbox`);
};

// Memory cap for the interpreter's linear memory: emscripten grows the heap from JS through
// Memory.prototype.grow; refusing makes malloc fail, which Python reports as MemoryError.
const originalGrow = WebAssembly.Memory.prototype.grow;
WebAssembly.Memory.prototype.grow = function grow(pages) {
  if (this.buffer.byteLength + pages * 65536 > maxWasmBytes) throw new RangeError('sandbox memory limit reached');
  return originalGrow.call(this, pages);
};

const send = (obj) => stdout.write(JSON.stringify(obj) + '\n');
let currentId = null;
const decoder = new TextDecoder('utf-8');
const writer = {
  isatty: false,
  write(buffer) {
    const text = decoder.decode(buffer, { stream: true });
    if (currentId !== null && text.length > 0) send({ id: currentId, chunk: text });
    return buffer.length;
  },
};

const { loadPyodide } = await import(new URL('pyodide.mjs', `file://${pyodideDir}/`).href);
// `js` is an empty object instead of globalThis, so `import js` reaches nothing.
const sandboxGlobals = Object.create(null);
const loadOptions = {
  indexURL: pyodideDir + '/',
  jsglobals: sandboxGlobals,
  env: { HOME: '/home/pyodide' },
  stdout: () => {},
  stderr: () => {},
};
if (config.makeSnapshot) {
  // Snapshot mode (no user code): save the freshly booted interpreter's memory so later
  // interpreters start from it, at a fraction of the CPU cost of booting.
  const booted = await loadPyodide({ ...loadOptions, _makeSnapshot: true });
  writeFileSync(config.makeSnapshot, booted.makeMemorySnapshot());
  // Renamed here, not by the host: the host may be gone by now (a one-shot `gptoss tool`).
  renameSync(config.makeSnapshot, config.snapshotFile);
  proc.exit(0);
}
if (config.snapshot) loadOptions._loadSnapshot = readFileSync(config.snapshot);
const pyodide = await loadPyodide(loadOptions);
pyodide.setStdout(writer);
pyodide.setStderr(writer);
pyodide.setStdin({ error: true });

// From here on the interpreter gets no handle on the host: drop the globals that do network I/O
// and the `require` pyodide installs (fs, crypto, child_process). New JS cannot be compiled
// (the child runs with --disallow-code-generation-from-strings), so `import('node:net')` is out of reach.
for (const name of ['require', 'fetch', 'WebSocket', 'EventSource', 'XMLHttpRequest', 'Request', 'Response', 'Headers', 'FormData', 'navigator']) {
  try {
    delete globalThis[name];
  } catch {
    /* not configurable: leave it */
  }
}
for (const name of ['kill', 'dlopen', 'report', '_debugProcess', '_startProfilerIdleNotifier', 'setuid', 'setgid', 'seteuid', 'setegid', 'setgroups', 'chdir', 'openStdin']) {
  try {
    Object.defineProperty(process, name, { value: undefined, configurable: false, writable: false });
  } catch {
    /* ignore */
  }
}
// pyodide can switch Python sockets to real TCP through node:net (initializeNodeSockFS): remove it.
for (const key of Object.keys(pyodide._api ?? {})) {
  if (/sock/i.test(key)) {
    try {
      pyodide._api[key] = undefined;
    } catch {
      /* ignore */
    }
  }
}
try {
  pyodide.unregisterJsModule('pyodide_js');
} catch {
  /* already absent */
}
try {
  pyodide.unregisterJsModule('js');
} catch {
  /* already absent */
}

// The Python side: a runner function that executes one cell, prints the last expression in stateful
// (notebook) mode, and formats tracebacks without its own frame; then block the bridge modules.
pyodide.runPython(String.raw`
import ast as _ast, os as _os, sys as _sys, traceback as _traceback
_os.makedirs("/mnt/data", exist_ok=True)

def _gptoss_run(code, stateful, ns):
    # Returns the cell's exit status, as a python process would have it: 0, 1 for an uncaught
    # exception, or the status given to sys.exit.
    try:
        tree = compile(code, "<stdin>", "exec", flags=_ast.PyCF_ONLY_AST)
        last = None
        if stateful and tree.body and isinstance(tree.body[-1], _ast.Expr):
            last = _ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<stdin>", "exec"), ns)
        if last is not None:
            value = eval(compile(last, "<stdin>", "eval"), ns)
            if value is not None:
                print(repr(value))
        return 0
    except SystemExit as e:
        if e.code is None or e.code == 0:
            return 0
        if isinstance(e.code, int):
            print(f"exit status {e.code}", file=_sys.stderr)
            return e.code & 0xFF or 1
        print(e.code, file=_sys.stderr)
        return 1
    except BaseException as e:
        te = _traceback.TracebackException(type(e), e, e.__traceback__)
        _hide_runner_frames(te)
        _sys.stderr.write("".join(te.format()))
        return 1
    finally:
        _sys.stdout.flush()
        _sys.stderr.flush()

def _hide_runner_frames(te):
    # Frames of this runner and of the import blocker are not the user's code.
    while te is not None:
        te.stack = _traceback.StackSummary.from_list([f for f in te.stack if f.filename != "<exec>"])
        te = te.__cause__ or te.__context__

def _no_processes(*args, **kwargs):
    raise OSError(38, "Creating processes is not possible in this sandbox")

_os.system = _no_processes
_os.popen = _no_processes
_os.environ.pop("_", None)

class _GptossBlocker:
    blocked = ("js", "pyodide_js", "pyodide", "_pyodide", "_pyodide_core", "pyodide.ffi", "pyodide.code", "pyodide.http", "pyodide.webloop", "micropip")
    def find_spec(self, name, path=None, target=None):
        if name in self.blocked or name.split(".")[0] in self.blocked:
            raise ImportError(f"module '{name}' is not available in this sandbox")
        return None

for _name in list(_sys.modules):
    if _name.split(".")[0] in _GptossBlocker.blocked:
        _sys.modules[_name] = None
_sys.meta_path.insert(0, _GptossBlocker())
del _name
`);
const runCell = pyodide.globals.get('_gptoss_run');
pyodide.runPython('del _gptoss_run, _GptossBlocker');
const freshNamespace = () => pyodide.runPython('{"__name__": "__main__", "__builtins__": __builtins__}');
let namespace = freshNamespace();

send({ type: 'ready' });

// Last steps: the JS side the interpreter can reach must hold nothing worth reaching, whatever
// happens to the Python-level blockers above (user code can drop them and find pyodide's FFI
// through the garbage collector, which gives it JS objects, hence Object, Function and Error).
// - No global `process`: through it, any JS object of the host would lead to the stdio sockets,
//   whose constructor opens TCP connections (Node 20's permission model does not cover the
//   network). The runner keeps its own references above, in module scope.
delete globalThis.process;
delete globalThis.Buffer;
// - Node's console holds process.stdout and process.stderr (`_stdout`, `_stderr`): replace it by
//   one whose methods only close over a write to stderr (pyodide reports internal errors there).
const stderr = proc.stderr;
const log = (...args) => {
  stderr.write(args.map((a) => (typeof a === 'string' ? a : String(a))).join(' ') + '\n');
};
globalThis.console = Object.freeze(Object.assign(Object.create(null), { log, info: log, debug: log, warn: log, error: log, trace: log }));
// - A stack-trace hook would hand user code V8's call sites, whose getThis() and getFunction()
//   expose the receivers of the frames below it (the wasm instance, and any sloppy-mode function):
//   keep Error.prepareStackTrace unset for good.
Object.defineProperty(Error, 'prepareStackTrace', { value: undefined, writable: false, configurable: false });

const lines = createInterface({ input: stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === '') continue;
  const request = JSON.parse(line);
  currentId = request.id;
  if (!request.stateful) {
    namespace.destroy?.();
    namespace = freshNamespace();
  }
  let status;
  try {
    status = runCell(request.code, request.stateful === true, namespace);
  } catch (e) {
    // Python exceptions are handled in _gptoss_run; anything reaching here is a fault of the
    // interpreter itself (a JS exception through the wasm stack): it cannot be trusted any more.
    send({ id: currentId, chunk: `[ERROR] ${String(e && e.message ? e.message : e)}\n` });
    send({ id: currentId, done: true, fatal: true });
    proc.exit(70);
  }
  const tail = decoder.decode();
  if (tail) send({ id: currentId, chunk: tail });
  send({ id: currentId, done: true, status });
  currentId = null;
}

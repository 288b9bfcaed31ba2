// A long-lived Lighthouse runner: one per worker slot, one audit at a time.
//
// Usage: node runner.mjs /path/to/node_modules [LOG]
// LOG, the file lhfleet sends the runner's stderr to, only marks the process
// as lhfleet's: a later lhfleet finds leftover runners by it.
//
// It loads Lighthouse once and then reads one JSON request per line on
// stdin, and writes JSON event lines on stdout (Lighthouse's own log goes to
// stderr). Each audit launches a fresh Chrome with its own profile folder,
// so no state carries over between audits; audits never overlap, because
// Lighthouse's timing marks are global to the process.
//
// Requests:
//   {"op": "audit", "id", "url", "outputPath", "userDataDir", "chromePath",
//    "chromeFlags": [...], "preset": "mobile"|"desktop", "categories": [...],
//    "extraHeaders": {...}|null, "loginScript": PATH|null, "window": true|false}
//   {"op": "grant", "id"}     the measurement window may start
//   {"op": "render", "id", "inputPath", "outputPath"}
//   {"op": "exit"}
// Events:
//   {"event": "ready", "lighthouseVersion"}
//   {"event": "chrome", "id", "pid"}
//   {"event": "window-request", "id"}   waits for a grant when "window" is true
//   {"event": "window-release", "id"}   the page load trace has ended
//   {"event": "warning", "id", "message"}
//   {"event": "done", "id", "ok", "timings", "error"?}
import {pathToFileURL} from 'node:url';
import {createRequire} from 'node:module';
import {createInterface} from 'node:readline';
import {writeFile, readFile} from 'node:fs/promises';
import path from 'node:path';

const nodeModules = process.argv[2];
const load = (relative) => import(pathToFileURL(path.join(nodeModules, relative)).href);

const started = performance.now();
const {default: lighthouse} = await load('lighthouse/core/index.js');
const {default: desktopConfig} = await load('lighthouse/core/config/desktop-config.js');
const ChromeLauncher = await load('chrome-launcher/dist/index.js');
const {default: log} = await load('lighthouse-logger/index.js');
const {ReportGenerator} = await load('lighthouse/report/generator/report-generator.js');
const {default: pkg} = await import(
  pathToFileURL(path.join(nodeModules, 'lighthouse/package.json')).href,
  {with: {type: 'json'}},
);
const importSeconds = (performance.now() - started) / 1000;

// Puppeteer is one of Lighthouse's own dependencies: resolve it from there,
// and load it only for jobs with a login script.
const requireFromLighthouse = createRequire(path.join(nodeModules, 'lighthouse', 'package.json'));
let puppeteer = null;

async function runLoginScript(request, chrome) {
  if (puppeteer === null) {
    const entry = requireFromLighthouse.resolve('puppeteer-core');
    puppeteer = (await import(pathToFileURL(entry).href)).default;
  }
  const browser = await puppeteer.connect({
    browserURL: `http://127.0.0.1:${chrome.port}`,
    defaultViewport: null,
  });
  try {
    const module = await import(pathToFileURL(request.loginScript).href);
    const script = typeof module.default === 'function' ? module.default : null;
    if (script === null) {
      throw new Error('the login script exports no function; export one taking (browser, context)');
    }
    await script(browser, {url: request.url, options: {}});
  } finally {
    await browser.disconnect();
  }
}

function send(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

// The first artifact collected after the trace marks the end of the page
// load: everything after it (artifacts, audits, the report) does not depend
// on a quiet CPU.
let current = null;
log.events.on('status', ([, message]) => {
  if (current === null || typeof message !== 'string') return;
  if (message.startsWith('Analyzing and running audits')) {
    current.marks.auditsStart ??= performance.now();
  }
  if (current.released) return;
  if (message.startsWith('Getting artifact')) {
    current.released = true;
    current.marks.windowEnd = performance.now();
    send({event: 'window-release', id: current.id});
  }
});
log.events.on('warning', ([, message]) => {
  if (current !== null && typeof message === 'string') {
    send({event: 'warning', id: current.id, message});
  }
});

const grants = new Map();

function waitForGrant(id) {
  return new Promise((resolve) => grants.set(id, resolve));
}

function seconds(from, to) {
  if (from === undefined || to === undefined) return null;
  return Math.round(to - from) / 1000;
}

function describe(error) {
  return {
    code: error.code || null,
    name: error.name || 'Error',
    message: String(error.friendlyMessage || error.message || error),
    stack: String(error.stack || ''),
  };
}

async function audit(request) {
  const marks = {start: performance.now()};
  current = {id: request.id, released: false, marks};
  let chrome;
  try {
    try {
      chrome = await ChromeLauncher.launch({
        chromePath: request.chromePath,
        chromeFlags: request.chromeFlags,
        userDataDir: request.userDataDir,
        logLevel: 'silent',
      });
    } catch (error) {
      return {ok: false, error: {...describe(error), phase: 'launch'}};
    }
    current.chrome = chrome;
    send({event: 'chrome', id: request.id, pid: chrome.pid});
    if (request.loginScript) {
      try {
        await runLoginScript(request, chrome);
      } catch (error) {
        return {ok: false, error: {...describe(error), phase: 'login'}};
      }
    }
    marks.launched = performance.now();
    if (request.window) {
      const granted = waitForGrant(request.id);
      send({event: 'window-request', id: request.id});
      await granted;
    }
    marks.windowStart = performance.now();
    const flags = {
      port: chrome.port,
      output: 'json',
      logLevel: 'info',
      locale: 'en-US',
      onlyCategories: request.categories,
      channel: 'lhfleet',
    };
    if (request.extraHeaders) flags.extraHeaders = request.extraHeaders;
    // Lighthouse clears the origin's storage, cookies included, before it
    // loads the page: that would sign the login script's session out.
    if (request.loginScript) flags.disableStorageReset = true;
    const config = request.preset === 'desktop' ? desktopConfig : undefined;
    const result = await lighthouse(request.url, flags, config);
    marks.audited = performance.now();
    if (!current.released) {
      current.released = true;
      marks.windowEnd = marks.audited;
      send({event: 'window-release', id: request.id});
    }
    if (!result) {
      return {ok: false, error: {code: null, name: 'Error', message: 'Lighthouse returned no result.', stack: ''}};
    }
    await writeFile(request.outputPath, result.report);
    marks.written = performance.now();
    return {ok: true};
  } catch (error) {
    return {ok: false, error: {...describe(error), phase: 'audit'}};
  } finally {
    if (current && !current.released) {
      current.released = true;
      send({event: 'window-release', id: request.id});
    }
    if (chrome) {
      try {
        chrome.kill();
      } catch {
        // Chrome is already gone; the Python side sweeps its profile.
      }
    }
    marks.end = performance.now();
    current = null;
    marks.timings = {
      launch: seconds(marks.start, marks.launched),
      windowWait: seconds(marks.launched, marks.windowStart),
      window: seconds(marks.windowStart, marks.windowEnd),
      afterWindow: seconds(marks.windowEnd, marks.audited),
      artifacts: seconds(marks.windowEnd, marks.auditsStart),
      audits: seconds(marks.auditsStart, marks.audited),
      write: seconds(marks.audited, marks.written),
      total: seconds(marks.start, marks.end),
    };
    request.timings = marks.timings;
  }
}

async function render(request) {
  const lhr = JSON.parse(await readFile(request.inputPath, 'utf8'));
  await writeFile(request.outputPath, ReportGenerator.generateReportHtml(lhr));
}

// An unexpected rejection inside Lighthouse must not leave the runner
// half-alive. The Python side detects the exit and starts a fresh runner.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`Unhandled rejection in the runner: ${reason?.stack || reason}\n`);
  process.exit(70);
});

// When lhfleet dies, the runner is handed to another parent: stop at once,
// with the Chrome of the audit in progress.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) {
    try {
      current?.chrome?.kill();
    } finally {
      process.exit(0);
    }
  }
}, 500).unref();

send({event: 'ready', lighthouseVersion: pkg.version, importSeconds});

let queue = Promise.resolve();
const lines = createInterface({input: process.stdin});
lines.on('line', (line) => {
  if (!line.trim()) return;
  const request = JSON.parse(line);
  if (request.op === 'grant') {
    const resolve = grants.get(request.id);
    grants.delete(request.id);
    if (resolve) resolve();
    return;
  }
  if (request.op === 'exit') {
    queue.then(() => process.exit(0));
    return;
  }
  queue = queue.then(async () => {
    if (request.op === 'audit') {
      const outcome = await audit(request);
      send({event: 'done', id: request.id, timings: request.timings, ...outcome});
    } else if (request.op === 'render') {
      try {
        await render(request);
        send({event: 'done', id: request.id, ok: true});
      } catch (error) {
        send({event: 'done', id: request.id, ok: false, error: describe(error)});
      }
    } else {
      send({event: 'done', id: request.id, ok: false,
        error: {code: null, name: 'Error', message: `unknown op ${request.op}`, stack: ''}});
    }
  });
});
lines.on('close', () => queue.then(() => process.exit(0)));

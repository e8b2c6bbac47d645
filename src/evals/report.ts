// The self-contained HTML report of a run: headline score, a table and bars of every metric
// (per-tag means for HealthBench themes and axes), then every case with its conversation, the
// response (reasoning folded away) and the grading details; for a classification run, per-label
// precision and recall and the confusion table. No scripts, no external assets, so it can be
// archived or mailed as one file.
import { classificationMetrics, classificationPairs, NO_VALID_ANSWER } from './classify-eval.ts';
import type { CaseResult, RunLabels, RunSummary } from './types.ts';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const fmt = (v: number) => v.toFixed(3);

const STYLE = `
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 10px}
.meta{color:#5b6575;font-size:13px}
.score{font-size:40px;font-weight:700;margin:14px 0 2px}
.score small{font-size:16px;font-weight:400;color:#5b6575}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde1e7}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eceef2;font-size:14px;vertical-align:middle}
th{background:#f0f2f5;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bar{height:12px;background:#e6e9ee;border-radius:6px;min-width:160px}
.bar span{display:block;height:12px;border-radius:6px;background:#3f7be0}
.case{background:#fff;border:1px solid #dde1e7;border-radius:8px;margin:14px 0;padding:12px 16px}
.case h3{font-size:15px;margin:0 0 8px;display:flex;justify-content:space-between}
.msg{margin:6px 0;padding:8px 10px;border-radius:6px;white-space:pre-wrap;word-wrap:break-word}
.role{font-size:12px;font-weight:700;text-transform:uppercase;color:#5b6575;display:block;margin-bottom:2px}
.user{background:#eef3fb}.assistant{background:#f1f8f1}.system,.developer{background:#f6f2e9}
details{margin:6px 0} summary{cursor:pointer;color:#3f5f99;font-size:13px}
.reasoning{background:#f4f4f6;color:#4a5160;font-size:13px}
.met{color:#17803d;font-weight:700}.unmet{color:#b3261e;font-weight:700}
.failed{color:#b3261e}
td.hit{background:#e3f3e6;font-weight:700}td.miss{background:#fbe9e7}
`;

function metricRows(summary: RunSummary): string {
  return Object.entries(summary.metrics)
    .map(([name, m]) => `<tr><td>${esc(name)}</td><td class="num">${fmt(m.mean)}</td><td class="num">± ${fmt(m.bootstrapStd)}</td><td class="num">${m.n}</td><td><div class="bar"><span style="width:${(m.mean * 100).toFixed(1)}%"></span></div></td></tr>`)
    .join('\n');
}

function detailsHtml(r: CaseResult): string {
  const verdicts = r.details.verdicts as { criterion: string; points: number; criteriaMet: boolean; explanation: string }[] | undefined;
  if (Array.isArray(verdicts)) {
    const rows = verdicts
      // Green where the verdict earned points (a positive item met, a negative one avoided).
      .map((v) => `<tr><td class="num">${v.points}</td><td>${esc(v.criterion)}</td><td class="${v.criteriaMet === v.points > 0 ? 'met' : 'unmet'}">${v.criteriaMet ? 'met' : 'not met'}</td><td>${esc(v.explanation)}</td></tr>`)
      .join('\n');
    return `<table><tr><th>points</th><th>rubric item</th><th>verdict</th><th>grader's explanation</th></tr>${rows}</table>`;
  }
  const pairs = Object.entries(r.details)
    .filter(([, v]) => typeof v !== 'object' || v === null)
    .map(([k, v]) => `${esc(k)}: <b>${esc(String(v))}</b>`);
  return `<p class="meta">${pairs.join(' · ')}</p>`;
}

const fmtOrDash = (v: number | null) => (v === null ? '–' : fmt(v));

/** Per-label precision/recall/F1 and the confusion table (gold rows, predicted columns), when the run classified texts. */
function classificationHtml(results: readonly CaseResult[]): string {
  const pairs = classificationPairs(results);
  if (pairs.length === 0) return '';
  const m = classificationMetrics(pairs);
  const labelRows = m.labels
    .map((l) => `<tr><td>${esc(l.label)}</td><td class="num">${l.support}</td><td class="num">${l.predicted}</td><td class="num">${fmtOrDash(l.precision)}</td><td class="num">${fmtOrDash(l.recall)}</td><td class="num">${fmtOrDash(l.f1)}</td></tr>`)
    .join('\n');
  const columns = [...m.labels.map((l) => l.label), ...(m.invalid > 0 ? [NO_VALID_ANSWER] : [])];
  const golds = m.labels.map((l) => l.label).filter((l) => m.confusion[l] !== undefined);
  const confusionRows = golds
    .map((g) => `<tr><th>${esc(g)}</th>${columns.map((c) => {
      const count = m.confusion[g]?.[c] ?? 0;
      return `<td class="num${count === 0 ? '' : c === g ? ' hit' : ' miss'}">${count}</td>`;
    }).join('')}</tr>`)
    .join('\n');
  return `<h2>Classification</h2>
<p class="meta">accuracy ${fmt(m.accuracy)} (${pairs.filter((p) => p.predicted === p.expected).length} of ${m.n} correct)${m.invalid > 0 ? ` · <span class="failed">${m.invalid} answer(s) did not follow the policy's output format</span>` : ''}</p>
<table><tr><th>label</th><th>gold</th><th>predicted</th><th>precision</th><th>recall</th><th>F1</th></tr>
${labelRows}
</table>
<h2>Confusion table</h2>
<p class="meta">rows: gold label · columns: predicted label</p>
<table><tr><th>gold \\ predicted</th>${columns.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>
${confusionRows}
</table>`;
}

/** A long system message (a classification policy) is folded, so each case shows its text first. */
function messageHtml(m: { role: string; content: string }): string {
  const body = `<div class="msg ${esc(m.role)}"><span class="role">${esc(m.role)}</span>${esc(m.content)}</div>`;
  return m.role === 'system' && m.content.length > 400 ? `<details><summary>${esc(m.role)} message (${m.content.length} characters)</summary>${body}</details>` : body;
}

function caseHtml(r: CaseResult): string {
  const prompt = r.prompt.map(messageHtml).join('\n');
  const reasoning = r.response.reasoning !== undefined
    ? `<details><summary>reasoning (${r.response.reasoning.length} characters)</summary><div class="msg reasoning">${esc(r.response.reasoning)}</div></details>`
    : '';
  const cut = r.response.finishReason === 'length' ? ' <span class="failed">(cut off at the token cap)</span>' : '';
  return `<section class="case"><h3><span>${esc(r.id)}${cut}</span><span>score ${fmt(r.score)}</span></h3>
${prompt}
${reasoning}<div class="msg assistant"><span class="role">response</span>${esc(r.response.text)}</div>
${detailsHtml(r)}</section>`;
}

export function renderReport(summary: RunSummary, results: readonly CaseResult[], options: RunLabels): string {
  const settings = Object.entries(options.settings).map(([k, v]) => `${esc(k)}: ${esc(String(v))}`).join(' · ');
  const failed = summary.failed.length > 0
    ? `<h2>Failed cases</h2><p class="failed">${summary.failed.length} case(s) could not be run or graded and are not in the score; rerun with the same output folder to retry them.</p><ul>${summary.failed.map((f) => `<li class="failed">${esc(f.id)}: ${esc(f.error)}</li>`).join('')}</ul>`
    : '';
  const truncated = summary.truncated > 0 ? ` · <span class="failed">${summary.truncated} answer(s) cut off at the token cap</span>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(options.name)} — gptoss eval</title><style>${STYLE}</style></head>
<body><main>
<h1>${esc(options.name)}</h1>
<div class="meta">model: ${esc(options.modelLabel)}${options.graderLabel !== undefined ? ` · grader: ${esc(options.graderLabel)}` : ''}${settings !== '' ? ` · ${settings}` : ''}</div>
<div class="score">${fmt(summary.headline.mean)} <small>± ${fmt(summary.headline.bootstrapStd)} (n=${summary.headline.n})</small></div>
<div class="meta">${summary.cases} cases · ${summary.seconds.toFixed(1)} s · ${summary.usage.inputTokens} input / ${summary.usage.outputTokens} output tokens${truncated}</div>
<h2>Scores</h2>
<table><tr><th>metric</th><th>mean (clipped to [0, 1])</th><th>bootstrap std</th><th>n</th><th></th></tr>
${metricRows(summary)}
</table>
${classificationHtml(results)}
${failed}
<h2>Cases</h2>
${results.map(caseHtml).join('\n')}
</main></body></html>
`;
}

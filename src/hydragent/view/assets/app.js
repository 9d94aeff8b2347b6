"use strict";
performance.mark("hv-start");
// hydragent view: vanilla JS, no network. Data: the JSON index in #index; transcripts per job
// in #tx-N (embedded) or view_files/tx-N.js (loaded on first use). Every text from the data
// goes into the page through textContent, never innerHTML.
const D = JSON.parse(document.getElementById("index").textContent);
const app = document.getElementById("app");
const ROW = 30; // px, matches --row in style.css
const S = D.samples;
const JOBS = D.jobs;
const METRICS = D.metrics;

// ---- small helpers -------------------------------------------------------------------------
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "style") el.style.cssText = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
const isNum = (x) => typeof x === "number" && isFinite(x);
function fmt(x, digits = 3) { return isNum(x) ? (Number.isInteger(x) && digits !== 2 ? String(x) : x.toFixed(digits)) : "–"; }
function money(x) { return isNum(x) ? "$" + (x >= 1 ? x.toFixed(2) : x >= 0.001 || x === 0 ? x.toPrecision(3) : x.toExponential(2)) : "–"; }
function ci(stat) {
  if (!stat || !isNum(stat.mean)) return "–";
  if (!isNum(stat.ci_low)) return stat.mean.toFixed(3);
  return `${stat.mean.toFixed(3)} [${stat.ci_low.toFixed(2)}, ${stat.ci_high.toFixed(2)}]`;
}
function text(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}
function scoreCell(value) {
  if (!isNum(value)) return h("span", { class: "note", text: "–" });
  const cls = value === 1 ? "score-1" : value === 0 ? "score-0" : "";
  return h("span", { class: cls, text: Number.isInteger(value) ? String(value) : value.toFixed(3) });
}
function statusBadge(row) {
  return row.ok ? h("span", { class: "badge ok", text: "ok" })
    : h("span", { class: "badge error", title: row.c || "error", text: "error" });
}
// Many varying settings (a folder of separate runs): one "what sets it apart" column of
// chips instead of a column per setting; a sweep over a few keys keeps its columns.
const WIDE = D.varying.length > 4;
function apartPairs(job) {
  return D.jobs.length === 1 || WIDE ? job.apart : D.varying.map((k) => [k, job.settings[k] ?? "–"]);
}
function jobLabel(job) {
  const text = apartPairs(job).map(([k, v]) => `${k}=${v}`).join(" ");
  return `#${job.n} ` + (text || (WIDE ? "the usual settings" : job.name));
}
function apartCell(job) {
  const pairs = apartPairs(job);
  return h("td", { class: "apart" },
    h("div", { class: "chips" }, pairs.length ? pairs.map(([k, v]) => h("span", { class: "chip", title: k, text: `${k}=${v}` }))
      : h("span", { class: "note", text: "the usual settings" })),
    h("div", { class: "folder note", title: job.name, text: job.name }));
}
const go = (hash) => { location.hash = hash; };
const sampleHash = (n, id) => `#/job/${n}/sample/${encodeURIComponent(id)}`;

// rows by sample position, per job (built on first use)
const byPos = {};
function rowsByPos(n) {
  if (!byPos[n]) { byPos[n] = new Map(); for (const r of D.rows[n]) byPos[n].set(r.s, r); }
  return byPos[n];
}
const posById = new Map(S.id.map((id, i) => [id, i]));
let lowerInputs = null;
function haystack(pos, row) {
  if (!lowerInputs) lowerInputs = S.input.map((x, i) => ((x || "") + "\n" + S.id[i]).toLowerCase());
  if (row._lc === undefined) row._lc = (row.a || "").toLowerCase();
  return [lowerInputs[pos], row._lc];
}
function matches(query, pos, row) {
  if (!query) return true;
  const [input, answer] = haystack(pos, row);
  return input.includes(query) || answer.includes(query);
}

// ---- transcripts: embedded JSON or view_files/tx-N.js, on first use -------------------------
const TX = {}; const waiting = {};
window.HV_TX = (n, json) => { TX[n] = JSON.parse(json); (waiting[n] || []).forEach((f) => f[0]()); delete waiting[n]; };
function transcripts(n) {
  if (TX[n]) return Promise.resolve(TX[n]);
  const block = document.getElementById("tx-" + n);
  if (block) { TX[n] = JSON.parse(block.textContent); return Promise.resolve(TX[n]); }
  return new Promise((resolve, reject) => {
    const first = !waiting[n];
    (waiting[n] = waiting[n] || []).push([() => resolve(TX[n]), reject]);
    if (first) {
      const script = h("script", { src: `view_files/tx-${n}.js` });
      script.onerror = () => { (waiting[n] || []).forEach((f) => f[1](new Error(`view_files/tx-${n}.js could not be loaded`))); delete waiting[n]; };
      document.head.append(script);
    }
  });
}

// ---- a virtualised list: only the rows in view are in the DOM -------------------------------
function vlist(columns, items, renderRow, onPick, rowClass) {
  const template = columns.map((c) => c.w).join(" ");
  const head = h("div", { class: "vhead", style: `grid-template-columns:${template}` },
    columns.map((c) => h("span", { class: c.num ? "num" : "", text: c.label, title: c.title || c.label })));
  const body = h("div", { class: "vbody", role: "list" });
  const inner = h("div", { style: `position:relative;height:${items.length * ROW}px` });
  body.append(inner);
  let pending = false;
  function draw() {
    pending = false;
    const top = body.scrollTop, height = body.clientHeight || 600;
    const start = Math.max(0, Math.floor(top / ROW) - 8);
    const end = Math.min(items.length, Math.ceil((top + height) / ROW) + 8);
    const rows = [];
    for (let i = start; i < end; i++) {
      const item = items[i];
      const row = h("div", { class: "vrow " + (rowClass ? rowClass(item) : ""), role: "listitem", tabindex: 0,
        style: `top:${i * ROW}px;grid-template-columns:${template}`, onclick: () => onPick(item),
        onkeydown: (e) => { if (e.key === "Enter") onPick(item); } },
        renderRow(item));
      rows.push(row);
    }
    inner.replaceChildren(...rows);
  }
  body.addEventListener("scroll", () => { if (!pending) { pending = true; requestAnimationFrame(draw); } });
  const list = h("div", { class: "vlist" }, head, body);
  requestAnimationFrame(draw);
  draw();
  return list;
}

// ---- jobs ------------------------------------------------------------------------------------
const jobsState = { sort: null, dir: 1, filter: "", pool: "", selected: new Set() };
// Replicates pooled: the rows and their metrics' intervals come from Python (report.tables
// pooled_stats, with hydragent.stats.mean_ci), so a pooled CI is the same method as a job's.
function pooledRows(key) {
  return (D.pooled[key] || []).map(({ label, members: numbers, metrics }) => {
    const members = numbers.map((n) => JOBS[n]);
    const sum = (f) => members.reduce((a, j) => a + (f(j) || 0), 0);
    const costs = members.map((j) => j.stats.cost_usd).filter(isNum);
    const lat = members.map((j) => j.stats.latency_s).filter(isNum);
    const causes = {};
    for (const j of members) for (const e of j.stats.errors) causes[e.cause] = (causes[e.cause] || 0) + e.count;
    return { pooled: true, label: label || "all jobs", members, settings: members[0].settings,
      stats: { metrics, counts: { total: sum((j) => j.stats.counts.total), error: sum((j) => j.stats.counts.error) },
        errors: Object.entries(causes).map(([cause, count]) => ({ cause, count })).sort((a, b) => b.count - a.count),
        tokens: { total_tokens: sum((j) => j.stats.tokens.total_tokens) },
        cost_usd: costs.length ? costs.reduce((a, b) => a + b, 0) : null,
        latency_s: lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : null,
        wall_time_s: sum((j) => j.stats.wall_time_s) } };
  });
}
function jobColumns(pool) {
  const cols = [];
  if (!pool) cols.push({ key: "sel", label: "", value: () => 0, nosort: true });
  cols.push(pool ? { key: "members", label: "jobs", value: (r) => r.members.length, num: true }
    : { key: "n", label: "#", value: (r) => r.n, num: true });
  if (WIDE && !pool) {
    cols.push({ key: "apart", label: "what sets the job apart (folder below)", value: (r) => jobLabel(r), apart: true });
  } else {
    // A folder of sweeps: which sweep each job came from.
    if (!pool && JOBS.length > 1 && JOBS.some((j) => !/^\d+$/.test(j.name))) cols.push({ key: "name", label: "folder", value: (r) => r.name, setting: true, folder: true });
    for (const k of D.varying) if (k !== pool) cols.push({ key: "set:" + k, label: k, value: (r) => r.settings[k], setting: true });
  }
  for (const m of METRICS) cols.push({ key: "m:" + m, label: m, value: (r) => r.stats.metrics[m]?.mean, metric: m, num: true });
  cols.push(
    { key: "total", label: "samples", value: (r) => r.stats.counts.total, num: true },
    { key: "errors", label: "errors", value: (r) => r.stats.counts.error, num: true },
    { key: "tokens", label: "tokens", value: (r) => r.stats.tokens.total_tokens, num: true },
    { key: "cost", label: "cost", value: (r) => r.stats.cost_usd, num: true },
    { key: "latency", label: "latency s", value: (r) => r.stats.latency_s, num: true },
    { key: "wall", label: "wall s", value: (r) => r.stats.wall_time_s, num: true });
  return cols;
}
function compareValues(a, b) {
  const na = a === null || a === undefined, nb = b === null || b === undefined;
  if (na || nb) return na === nb ? 0 : na ? 1 : -1;
  if (isNum(a) && isNum(b)) return a - b;
  const fa = parseFloat(a), fb = parseFloat(b);
  if (!isNaN(fa) && !isNaN(fb) && String(fa) === String(a) && String(fb) === String(b)) return fa - fb;
  return String(a).localeCompare(String(b));
}
function renderJobs() {
  const st = jobsState;
  const constant = Object.entries(D.constant);
  const poolSelect = h("select", { id: "pool", onchange: (e) => { st.pool = e.target.value; renderJobs(); } },
    h("option", { value: "", text: "no pooling" }),
    D.varying.map((k) => h("option", { value: k, text: `pool over ${k}`, selected: st.pool === k })));
  const compareButton = h("button", { id: "compare-selected", disabled: st.selected.size !== 2,
    onclick: () => { const [a, b] = [...st.selected].sort((x, y) => x - y); go(`#/compare/${a}/${b}`); } },
    `Compare selected (${st.selected.size}/2)`);
  const filter = h("input", { type: "search", id: "job-filter", placeholder: "filter jobs by setting…", value: st.filter,
    oninput: (e) => { st.filter = e.target.value; drawTable(); } });
  const table = h("table", { class: "grid", id: "jobs-table" });
  const count = h("span", { class: "note" });
  function drawTable() {
    const pool = st.pool;
    const cols = jobColumns(pool);
    let rows = pool ? pooledRows(pool) : JOBS.slice();
    const q = st.filter.toLowerCase();
    if (q) rows = rows.filter((r) => (r.pooled ? r.label : jobLabel(r) + " " + r.name).toLowerCase().includes(q));
    const sortCol = cols.find((c) => c.key === st.sort);
    if (sortCol) rows.sort((a, b) => st.dir * compareValues(sortCol.value(a), sortCol.value(b)));
    count.textContent = `${rows.length} of ${pool ? pooledRows(pool).length + " pooled rows" : JOBS.length + " jobs"}`;
    const head = h("tr", {}, cols.map((c) => h("th", {
      class: (c.num ? "num " : "") + (st.sort === c.key ? (st.dir > 0 ? "sorted-asc" : "sorted-desc") : ""),
      "data-col": c.key, title: c.nosort ? "select two jobs to compare" : "sort",
      onclick: () => { if (c.nosort) return; st.dir = st.sort === c.key ? -st.dir : 1; st.sort = c.key; drawTable(); } }, c.label)));
    const body = rows.map((r) => {
      const cells = cols.map((c) => {
        if (c.key === "sel") {
          return h("td", { onclick: (e) => e.stopPropagation() }, h("input", { type: "checkbox", class: "pick", "data-job": r.n,
            checked: st.selected.has(r.n), onchange: (e) => { e.target.checked ? st.selected.add(r.n) : st.selected.delete(r.n); renderJobs(); } }));
        }
        if (c.key === "members") {
          return h("td", { class: "num" }, r.members.map((j) => h("a", { href: `#/job/${j.n}`, onclick: (e) => e.stopPropagation(), text: `#${j.n} ` })));
        }
        if (c.apart) return apartCell(r);
        if (c.folder) return h("td", { class: "folder", title: r.name, text: r.name });
        if (c.metric) return h("td", { class: "num metric" }, ci(r.stats.metrics[c.metric]), h("div", { class: "note", text: r.stats.metrics[c.metric]?.n !== undefined ? ` n=${r.stats.metrics[c.metric].n}` : "" }));
        if (c.key === "errors") {
          const e = r.stats.counts.error;
          return h("td", { class: "num " + (e ? "errors" : ""), title: r.stats.errors.map((x) => `${x.cause}: ${x.count}`).join("\n") },
            e ? `${e} (${r.stats.errors.slice(0, 2).map((x) => `${x.cause} ${x.count}`).join(", ")})` : "0");
        }
        if (c.key === "cost") return h("td", { class: "num", title: r.stats.cost_known !== undefined ? `${r.stats.cost_known} samples priced` : "" }, money(c.value(r)));
        if (c.key === "latency" || c.key === "wall") return h("td", { class: "num" }, fmt(c.value(r), 2));
        return h("td", { class: (c.num ? "num" : "") + (c.setting ? " setting" : "") }, c.value(r) ?? "–");
      });
      const attrs = r.pooled ? { class: "pooled" } : { "data-job": r.n, tabindex: 0, onclick: () => go(`#/job/${r.n}`),
        onkeydown: (e) => { if (e.key === "Enter") go(`#/job/${r.n}`); } };
      return h("tr", attrs, cells);
    });
    table.replaceChildren(h("thead", {}, head), h("tbody", {}, body));
  }
  drawTable();
  app.replaceChildren(
    h("h2", {}, `${JOBS.length} job${JOBS.length === 1 ? "" : "s"}`),
    h("div", { class: "chips", id: "constant" }, h("span", { class: "note", text: "same in every job:" }),
      constant.length ? constant.map(([k, v]) => h("span", { class: "chip", text: `${k}=${v}` })) : h("span", { class: "note", text: "–" })),
    // replaceChildren writes a null argument as the text "null": leave the node out instead
    ...(WIDE ? [h("div", { class: "chips", id: "usual" }, h("span", { class: "note", text: "the usual settings (most jobs):" }),
      Object.entries(D.usual).map(([k, v]) => h("span", { class: "chip", text: `${k}=${v}` })))] : []),
    h("div", { class: "toolbar" }, filter, poolSelect, compareButton, count),
    h("p", { class: "note", text: "Scores: mean [95% CI] over scored samples (n below). Errored samples are counted apart, never as wrong answers. Click a job for its samples." }),
    table);
}

// ---- one job's samples -----------------------------------------------------------------------
const sampleState = {};
function filteredRows(n) {
  const st = sampleState[n] || {};
  const q = (st.q || "").toLowerCase().trim();
  const out = [];
  for (const r of D.rows[n]) {
    if (st.status === "ok" && !r.ok) continue;
    if (st.status === "error" && r.ok) continue;
    if (st.cause && r.c !== st.cause) continue;
    if (st.metric && st.score) {
      const v = r.sc[st.metric];
      if (!r.ok || !isNum(v)) continue;
      if (st.score === "1" && v !== 1) continue;
      if (st.score === "0" && v !== 0) continue;
      if (st.score === "mid" && (v <= 0 || v >= 1)) continue;
    }
    if (q && !matches(q, r.s, r)) continue;
    out.push(r);
  }
  return out;
}
function jobHeader(job) {
  const s = job.stats;
  return [
    h("div", { class: "crumbs" }, h("a", { href: "#/", text: "Jobs" }), " › ", jobLabel(job)),
    h("h2", {}, jobLabel(job)),
    h("div", { class: "chips" },
      METRICS.map((m) => h("span", { class: "chip", text: `${m}: ${ci(s.metrics[m])}` })),
      h("span", { class: "chip", text: `${s.counts.total} samples, ${s.counts.ok} ok` }),
      h("span", { class: "chip " + (s.counts.error ? "errors" : ""), text: `${s.counts.error} errors` + (s.errors.length ? ": " + s.errors.map((e) => `${e.cause} ${e.count}`).join(", ") : "") }),
      s.counts.not_run ? h("span", { class: "chip errors", text: `${s.counts.not_run} not run` }) : null,
      h("span", { class: "chip", text: `${s.tokens.total_tokens} tokens` }),
      h("span", { class: "chip", text: `cost ${money(s.cost_usd)}` }),
      h("span", { class: "chip", text: `latency ${fmt(s.latency_s, 2)} s/sample` }),
      job.info.model_id ? h("span", { class: "chip", text: `model ${job.info.model_id}` }) : null,
      job.unreadable ? h("span", { class: "chip errors", text: `${job.unreadable} unreadable lines in samples.jsonl` }) : null),
    (job.causes || []).length ? h("ul", { class: "causes", id: "causes" }, job.causes.map((c) => h("li", {},
      h("span", { class: "errors", text: `${c.count}× ` }), c.cause || "",
      c.example_id !== undefined && c.example_id !== null ? h("a", { href: sampleHash(job.n, String(c.example_id)), text: ` (e.g. ${c.example_id})` }) : null,
      c.fix ? h("div", { class: "note", text: `fix: ${c.fix}` }) : null))) : null,
  ];
}
function renderJob(n) {
  const job = JOBS[n];
  if (!job) return notFound(`no job #${n}`);
  const st = sampleState[n] = sampleState[n] || {};
  const causes = job.stats.errors.map((e) => e.cause);
  const listHolder = h("div", { id: "samples" });
  const count = h("span", { class: "note", id: "sample-count" });
  function draw() {
    const rows = filteredRows(n);
    count.textContent = `${rows.length} of ${D.rows[n].length} samples`;
    const cols = [{ label: "#", w: "4em", num: true }, { label: "id", w: "minmax(6em,12em)" }, { label: "status", w: "5.5em" },
      ...METRICS.map((m) => ({ label: m, w: "5em", num: true })),
      { label: "answer", w: "minmax(8em,2fr)" }, { label: "target", w: "minmax(5em,1fr)" }, { label: "input", w: "minmax(8em,2fr)" },
      { label: "tokens", w: "5em", num: true }, { label: "latency", w: "5em", num: true }, { label: "cost", w: "6em", num: true }];
    listHolder.replaceChildren(vlist(cols, rows, (r) => [
      h("span", { class: "num", text: S.index[r.s] }), h("span", { text: S.id[r.s], title: S.id[r.s] }), h("span", {}, statusBadge(r)),
      ...METRICS.map((m) => h("span", { class: "num" }, r.ok ? scoreCell(r.sc[m]) : h("span", { class: "note", text: "–" }))),
      h("span", { text: r.ok ? r.a ?? "" : `error: ${r.c}`, class: r.ok ? "" : "errors", title: r.ok ? r.a ?? "" : r.c }),
      h("span", { text: S.target[r.s] ?? "" }), h("span", { class: "note", text: S.input[r.s] ?? "" }),
      h("span", { class: "num", text: r.tk ?? "–" }), h("span", { class: "num", text: fmt(r.l, 2) }), h("span", { class: "num", text: money(r.$) })],
    (r) => go(sampleHash(n, S.id[r.s])), (r) => (r.ok ? "" : "is-error")));
  }
  const set = (key) => (e) => { st[key] = e.target.value; draw(); };
  const toolbar = h("div", { class: "toolbar" },
    h("input", { type: "search", id: "sample-search", placeholder: "search inputs, answers, ids…", value: st.q || "", oninput: set("q") }),
    h("label", {}, "status ", h("select", { id: "status-filter", onchange: set("status") },
      ["", "ok", "error"].map((v) => h("option", { value: v, text: v || "all", selected: (st.status || "") === v })))),
    h("label", {}, "error cause ", h("select", { id: "cause-filter", onchange: set("cause") },
      h("option", { value: "", text: "any" }), causes.map((c) => h("option", { value: c, text: c, selected: st.cause === c })))),
    METRICS.length ? h("label", {}, "score ", h("select", { id: "metric-filter", onchange: set("metric") },
      h("option", { value: "", text: "any metric" }), METRICS.map((m) => h("option", { value: m, text: m, selected: st.metric === m }))),
      " ", h("select", { id: "score-filter", onchange: set("score") },
        [["", "any score"], ["1", "= 1 (right)"], ["0", "= 0 (wrong)"], ["mid", "between 0 and 1"]].map(([v, t]) => h("option", { value: v, text: t, selected: (st.score || "") === v })))) : null,
    count);
  app.replaceChildren(...jobHeader(job).filter(Boolean), toolbar, listHolder);
  draw();
}

// ---- one sample: facts, transcript, the same sample in every job ----------------------------
function renderContent(content) {
  if (content === null || content === undefined) return null;
  if (Array.isArray(content)) {
    return content.map((part) => part && part.type === "text" ? h("pre", { text: part.text ?? "" })
      : h("pre", { class: "note", text: part && part.type === "image" ? "[image]" : text(part) }));
  }
  return h("pre", { text: text(content) });
}
function renderMessage(m, i) {
  const role = m.role || "message";
  const usage = m.token_usage ? ` · tokens in ${m.token_usage.input_tokens ?? "?"} out ${m.token_usage.output_tokens ?? "?"}` : "";
  const parts = [h("div", {}, h("span", { class: "role", text: role }),
    h("span", { class: "meta", text: `#${i + 1}` + (m.step !== undefined ? ` · step ${m.step}` : "") + (m.name ? ` · ${m.name}` : "") + (m.tool_call_id ? ` · ${m.tool_call_id}` : "") + usage }))];
  if (m.reasoning_content) parts.push(h("details", { class: "reasoning" }, h("summary", { text: "reasoning" }), h("pre", { text: text(m.reasoning_content) })));
  parts.push(renderContent(withoutCalls(m)));
  for (const call of m.tool_calls || []) {
    const fn = call.function || call;
    parts.push(h("div", { class: "call" }, "→ ", h("code", { text: fn.name || "?" }), h("pre", { text: text(fn.arguments) })));
  }
  if (m.code && !(typeof m.content === "string" && m.content.includes(m.code))) parts.push(h("details", { open: true }, h("summary", { text: "code" }), h("pre", { text: m.code })));
  if (m.observation) parts.push(h("pre", { text: text(m.observation) }));
  if (m.error) parts.push(h("div", { class: "error-box", text: `error: ${text(m.error)}` }));
  return h("div", { class: `msg ${role}` + (m.error ? " has-error" : ""), "data-role": role }, parts);
}
// A tool-call message's text repeats its calls as JSON ("...\nCalling tools:\n[{...}]", or
// the whole reply as one {"name", "arguments"} object): they are shown once, formatted below.
function withoutCalls(m) {
  if (!(m.tool_calls || []).length || typeof m.content !== "string") return m.content;
  const at = m.content.indexOf("Calling tools:");
  const before = (at >= 0 ? m.content.slice(0, at) : m.content).trim();
  try {
    const parsed = JSON.parse(before);
    if (parsed && typeof parsed === "object" && ("name" in parsed || Array.isArray(parsed))) return null;
  } catch (e) { /* text, not a call */ }
  return before || null;
}
function usageText(u) {
  if (!u) return "–";
  const extra = ["reasoning_tokens", "cached_tokens"].filter((k) => u[k]).map((k) => `${k.replace("_tokens", "")} ${u[k]}`);
  return `in ${u.input_tokens ?? 0} · out ${u.output_tokens ?? 0} · total ${u.total_tokens ?? 0}` + (extra.length ? " · " + extra.join(" · ") : "");
}
function acrossJobs(pos, current) {
  const here = rowsByPos(current).get(pos);
  const rows = JOBS.map((job) => [job, rowsByPos(job.n).get(pos)]).filter(([, r]) => r);
  const differs = (r) => here && (r.ok !== here.ok || METRICS.some((m) => r.sc[m] !== here.sc[m]));
  return h("table", { class: "grid", id: "across-jobs" },
    h("thead", {}, h("tr", {}, h("th", { text: "job" }), h("th", { text: "status" }), METRICS.map((m) => h("th", { class: "num", text: m })), h("th", { text: "answer" }), h("th", { text: "" }))),
    h("tbody", {}, rows.map(([job, r]) => h("tr", { "data-job": job.n, class: job.n === current ? "current" : "", style: job.n === current ? "font-weight:600" : differs(r) ? "background:var(--flip)" : "",
      onclick: () => go(sampleHash(job.n, S.id[pos])) },
    h("td", { text: jobLabel(job) }), h("td", {}, statusBadge(r)), METRICS.map((m) => h("td", { class: "num" }, r.ok ? scoreCell(r.sc[m]) : "–")),
    h("td", { class: r.ok ? "" : "errors", text: r.ok ? r.a ?? "" : `error: ${r.c}` }), h("td", { class: "note", text: job.n === current ? "this job" : differs(r) ? "differs" : "" })))));
}
function renderSample(n, id) {
  const job = JOBS[n];
  const pos = posById.get(id);
  const row = job && pos !== undefined ? rowsByPos(n).get(pos) : undefined;
  if (!row) return notFound(`no sample ${id} in job #${n}`);
  const list = filteredRows(n);
  const at = list.indexOf(row);
  const prev = at > 0 ? list[at - 1] : null, next = at >= 0 && at < list.length - 1 ? list[at + 1] : null;
  const detail = h("div", { id: "detail" }, h("p", { class: "note", text: "loading transcript…" }));
  app.replaceChildren(
    h("div", { class: "crumbs" }, h("a", { href: "#/", text: "Jobs" }), " › ", h("a", { href: `#/job/${n}`, text: jobLabel(job) }), " › ", id),
    h("div", { class: "toolbar" }, h("h2", { style: "margin:0" }, `Sample ${id}`), statusBadge(row),
      h("button", { id: "prev-sample", title: "previous (←)", disabled: !prev, onclick: () => go(sampleHash(n, S.id[prev.s])) }, "‹ previous"),
      h("button", { id: "next-sample", title: "next (→)", disabled: !next, onclick: () => go(sampleHash(n, S.id[next.s])) }, "next ›"),
      at >= 0 ? h("span", { class: "note", text: `${at + 1} of ${list.length} in the filtered list` }) : null),
    detail);
  transcripts(n).then((all) => {
    const d = all[id] || {};
    const facts = [
      ["status", row.ok ? "ok" : "error"], ["error cause", row.c], ...METRICS.map((m) => [m, row.ok ? fmt(row.sc[m]) : "– (errored: not scored)"]),
      ["tokens", usageText(d.token_usage)], ["judge tokens", d.judge_token_usage && d.judge_token_usage.total_tokens ? usageText(d.judge_token_usage) : null],
      ["latency", isNum(d.latency_s) ? `${d.latency_s.toFixed(3)} s` : null], ["cost", money(d.cost_usd)], ["model", d.model], ["deployment", d.deployment],
      ["sandbox", d.sandbox], ["group", S.group[pos]], ["started", d.started_at], ["config hash", d.config_hash], ["index", S.index[pos]],
    ].filter(([, v]) => v !== null && v !== undefined && v !== "");
    const messages = d.messages || [];
    detail.replaceChildren(...[
      h("div", { class: "facts" }, facts.map(([k, v]) => h("div", {}, h("b", { text: k }), String(v)))),
      !row.ok ? h("div", { class: "error-box", id: "sample-error" },
        text(d.error).startsWith(d.error_type || row.c || "\u0000") ? null : h("b", { text: `${d.error_type || row.c || "error"}: ` }), text(d.error)) : null,
      h("h3", { text: "Input" }), h("pre", { id: "sample-input", text: text(S.input[pos]) }),
      h("h3", { text: "Target" }), h("pre", { text: text(S.target[pos]) }),
      h("h3", { text: "Answer" }), h("pre", { id: "sample-answer", class: d.answer === null || d.answer === undefined ? "note" : "", text: d.answer === null || d.answer === undefined ? (row.ok ? "(no answer)" : "(no answer: the sample errored)") : text(d.answer) }),
      // An errored sample's reply as the model sent it (e.g. one that broke the grammar).
      d.raw_reply !== undefined && d.raw_reply !== null ? h("h3", { text: "Raw reply (as the model sent it)" }) : null,
      d.raw_reply !== undefined && d.raw_reply !== null ? h("pre", { id: "sample-raw-reply", text: text(d.raw_reply) }) : null,
      h("h3", { text: "This sample in every job" }), acrossJobs(pos, n),
      h("h3", { text: `Transcript (${messages.length} messages)` }),
      h("div", { id: "transcript" }, messages.length ? messages.map(renderMessage) : h("p", { class: "note", text: "no transcript recorded" })),
    ].filter(Boolean));
  }, (error) => { detail.replaceChildren(h("div", { class: "error-box", text: String(error) })); });
}

// ---- two jobs on the same samples ------------------------------------------------------------
const compareState = { metric: METRICS[0] || "", flipsOnly: false, q: "" };
function pairStats(a, b) {
  if (!D.pairs) return null;
  const out = [];
  for (const p of D.pairs) {
    if (p.a === a && p.b === b) out.push(p);
    else if (p.a === b && p.b === a) {
      const neg = (x) => (isNum(x) ? -x : x);
      const mc = p.mcnemar ? { ...p.mcnemar, a_only: p.mcnemar.b_only, b_only: p.mcnemar.a_only } : null;
      const diff = neg(p.diff);
      out.push({ ...p, a, b, mean_a: p.mean_b, mean_b: p.mean_a, diff, ci_low: neg(p.ci_high), ci_high: neg(p.ci_low), mcnemar: mc,
        verdict: p.distinguishable ? `B ${diff > 0 ? "higher" : "lower"} by ${Math.abs(diff).toPrecision(3)}` : p.verdict });
    }
  }
  return out;
}
function renderCompare(a, b) {
  if (JOBS.length < 2) return app.replaceChildren(h("h2", { text: "Compare jobs" }), h("p", { text: "This folder has one job: nothing to compare." }));
  if (!(a in JOBS) || !(b in JOBS)) { a = 0; b = 1; }
  const st = compareState;
  const pick = (id, value, other) => h("select", { id, onchange: (e) => { const v = +e.target.value; go(id === "cmp-a" ? `#/compare/${v}/${other}` : `#/compare/${other}/${v}`); } },
    JOBS.map((j) => h("option", { value: j.n, text: jobLabel(j), selected: j.n === value })));
  const stats = pairStats(a, b);
  const statsTable = stats === null ? h("p", { class: "note", text: "Paired statistics need scipy and statsmodels (pip install 'hydragent[report]'), then rebuild the page." })
    : stats.length === 0 ? h("p", { class: "note", text: D.all_pairs ? "These jobs share no scored samples." : "Paired statistics were computed against job #0 only (many jobs); run: hydragent report DIR --baseline N." })
      : h("table", { class: "grid pair-stats", id: "pair-stats" },
        h("thead", {}, h("tr", {}, ["metric", "pairs", "mean A", "mean B", "B − A", "95% CI", "p (paired)", "McNemar (A only / B only, p)", "method", "verdict"].map((t) => h("th", { text: t })))),
        h("tbody", {}, stats.map((p) => h("tr", {},
          h("td", { text: p.metric }), h("td", { class: "num", text: `${p.n}` + (p.excluded ? ` (−${p.excluded} errored)` : "") }),
          h("td", { class: "num", text: fmt(p.mean_a) }), h("td", { class: "num", text: fmt(p.mean_b) }),
          h("td", { class: "num", text: isNum(p.diff) ? (p.diff >= 0 ? "+" : "") + p.diff.toFixed(3) : "–" }),
          h("td", { class: "num", text: isNum(p.ci_low) ? `[${p.ci_low.toFixed(3)}, ${p.ci_high.toFixed(3)}]` : "–" }),
          h("td", { class: "num", text: fmt(p.p_value, 4) }),
          h("td", { class: "num", text: p.mcnemar ? `${p.mcnemar.a_only} / ${p.mcnemar.b_only}, p=${fmt(p.mcnemar.p_value, 4)}${p.mcnemar.exact ? " (exact)" : ""}` : "–" }),
          h("td", { class: "note", text: p.method }),
          h("td", { class: "verdict " + (p.distinguishable ? "distinguishable" : "indistinct"), text: p.verdict })))));
  const ra = rowsByPos(a), rb = rowsByPos(b);
  const m = st.metric;
  const items = [];
  for (const [pos, x] of ra) {
    const y = rb.get(pos);
    if (!y) continue;
    let kind = "same", rank = 3;
    if (x.ok !== y.ok) { kind = x.ok ? "B errored" : "A errored"; rank = 2; }
    else if (!x.ok) { kind = "both errored"; rank = 4; }
    else if (m && isNum(x.sc[m]) && isNum(y.sc[m]) && x.sc[m] !== y.sc[m]) { kind = y.sc[m] > x.sc[m] ? "B better" : "B worse"; rank = y.sc[m] > x.sc[m] ? 1 : 0; }
    items.push({ pos, x, y, kind, rank });
  }
  const flips = items.filter((i) => i.rank <= 1);
  const counts = h("span", { class: "note", id: "flip-count" });
  const holder = h("div", { id: "compare-list" });
  function draw() {
    const q = st.q.toLowerCase().trim();
    const shown = items.filter((i) => (!st.flipsOnly || i.rank <= 1) && (!q || matches(q, i.pos, i.x) || matches(q, i.pos, i.y)));
    shown.sort((p, q2) => p.rank - q2.rank || S.index[p.pos] - S.index[q2.pos]);
    counts.textContent = `${flips.length} flips on ${m || "–"} (B worse ${flips.filter((i) => i.rank === 0).length}, B better ${flips.filter((i) => i.rank === 1).length}); showing ${shown.length} of ${items.length} shared samples, flips first`;
    const cols = [{ label: "id", w: "minmax(6em,11em)" }, { label: "change", w: "7em" }, { label: `A ${m}`, w: "4.5em", num: true }, { label: `B ${m}`, w: "4.5em", num: true },
      { label: `A answer (#${a})`, w: "minmax(8em,2fr)" }, { label: `B answer (#${b})`, w: "minmax(8em,2fr)" }, { label: "target", w: "minmax(5em,1fr)" }];
    const cell = (r) => (r.ok ? h("span", { text: r.a ?? "" }) : h("span", { class: "errors", text: `error: ${r.c}` }));
    holder.replaceChildren(vlist(cols, shown, (i) => [
      h("span", { text: S.id[i.pos], title: S.id[i.pos] }), h("span", { class: i.rank === 0 ? "errors" : i.rank === 1 ? "score-1" : "note", text: i.kind }),
      h("span", { class: "num" }, i.x.ok ? scoreCell(i.x.sc[m]) : "–"), h("span", { class: "num" }, i.y.ok ? scoreCell(i.y.sc[m]) : "–"),
      cell(i.x), cell(i.y), h("span", { text: S.target[i.pos] ?? "" })],
    (i) => go(sampleHash(b, S.id[i.pos])), (i) => (i.rank <= 1 ? "flip" : i.rank === 2 ? "is-error" : "")));
  }
  app.replaceChildren(
    h("div", { class: "crumbs" }, h("a", { href: "#/", text: "Jobs" }), " › compare"),
    h("h2", { text: "Compare two jobs on the same samples" }),
    h("div", { class: "toolbar" }, h("label", {}, "A ", pick("cmp-a", a, b)), h("label", {}, "B ", pick("cmp-b", b, a))),
    statsTable,
    h("p", { class: "note", text: "B − A over samples scored in both jobs; errored samples are left out of the pairs and listed apart. “not distinguishable”: the 95% CI holds 0." }),
    h("div", { class: "toolbar" },
      METRICS.length ? h("label", {}, "metric ", h("select", { id: "cmp-metric", onchange: (e) => { st.metric = e.target.value; renderCompare(a, b); } },
        METRICS.map((x) => h("option", { value: x, text: x, selected: x === m })))) : null,
      h("label", {}, h("input", { type: "checkbox", id: "flips-only", checked: st.flipsOnly, onchange: (e) => { st.flipsOnly = e.target.checked; draw(); } }), " flips only"),
      h("input", { type: "search", id: "cmp-search", placeholder: "search inputs, answers…", value: st.q, oninput: (e) => { st.q = e.target.value; draw(); } }),
      counts),
    holder);
  draw();
}

// ← and → step through the filtered samples on a sample page (not while typing).
document.addEventListener("keydown", (e) => {
  if (e.target.closest && e.target.closest("input, select, textarea")) return;
  const button = { ArrowLeft: "prev-sample", ArrowRight: "next-sample" }[e.key];
  const el = button && document.getElementById(button);
  if (el && !el.disabled) el.click();
});

// ---- routing -------------------------------------------------------------------------------
function notFound(message) { app.replaceChildren(h("p", { class: "error-box", text: message }), h("a", { href: "#/", text: "back to the jobs" })); }
function render() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  document.getElementById("nav-jobs").classList.toggle("active", parts[0] !== "compare");
  document.getElementById("nav-compare").classList.toggle("active", parts[0] === "compare");
  window.scrollTo(0, 0);
  if (parts[0] === "job" && parts[2] === "sample") renderSample(+parts[1], decodeURIComponent(parts.slice(3).join("/")));
  else if (parts[0] === "job") renderJob(+parts[1]);
  else if (parts[0] === "compare") {
    const sel = [...jobsState.selected].sort((x, y) => x - y);
    renderCompare(parts[1] !== undefined ? +parts[1] : sel[0] ?? 0, parts[2] !== undefined ? +parts[2] : sel[1] ?? 1);
  } else if (JOBS.length === 1 && parts[0] === "" && !jobsState.visited) { jobsState.visited = true; renderJob(0); }
  else renderJobs();
  document.body.dataset.ready = "1";
  if (!performance.getEntriesByName("hv-ready").length) performance.mark("hv-ready");
}
document.getElementById("root-path").textContent = D.root;
window.addEventListener("hashchange", render);
render();

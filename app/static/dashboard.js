// The dashboard page: snapshots arrive as server-sent events (/events); the run history
// (/api/history), older pages of runs (/api/runs?offset=) and a run's task stream
// (/api/runs/RUN_ID/timeline) are fetched as needed. Charts are uPlot's (static/).
// Each render is timed with the User Timing API ("chunksum render", "chunksum task stream").
"use strict";

const PAGE_REFRESH_MS = 5000, HISTORY_REFRESH_MS = 10000, STREAM_REFRESH_MS = 2000;
let state = null, selected = null, offset = 0, olderPage = null, historyData = null;
let throughputChart = null, historyChart = null, streamTimer = null;

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (cls) td.className = cls;
  return td;
}

function seconds(s) { return s < 1 ? (s * 1000).toFixed(0) + " ms" : s.toFixed(2) + " s"; }
function count(n) { return n == null ? "" : n.toLocaleString(); }
function si(n) {
  if (n == null) return "–";
  const abs = Math.abs(n);
  for (const [limit, suffix] of [[1e9, " G"], [1e6, " M"], [1e3, " k"]]) {
    if (abs >= limit) return (n / limit).toFixed(abs >= 10 * limit ? 0 : 1) + suffix;
  }
  return abs >= 10 || n === 0 ? n.toFixed(0) : n.toFixed(1);
}
function when(t) { return t ? new Date(t * 1000).toLocaleTimeString() : ""; }

async function getJSON(url) {
  const reply = await fetch(url);
  if (reply.status === 401) { location.reload(); throw new Error("signed out"); }
  if (!reply.ok) throw new Error(url + ": " + reply.status);
  return reply.json();
}

function timed(name, work) {
  const start = performance.now();
  try { return work(); } finally { performance.measure(name, { start, end: performance.now() }); }
}

// ---- charts ----------------------------------------------------------------------------

function chartWidth(id) { return Math.max(300, document.getElementById(id).clientWidth); }

function makeThroughput() {
  const opts = {
    width: chartWidth("throughput"), height: 220,
    scales: { x: { time: true }, chunks: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] },
              numbers: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] } },
    series: [
      { label: "time" },
      { label: "chunks/s", scale: "chunks", stroke: "#2563eb", width: 2,
        value: (u, v) => v == null ? "–" : si(v) + " chunks/s" },
      { label: "numbers/s", scale: "numbers", stroke: "#15803d", width: 2,
        value: (u, v) => v == null ? "–" : si(v) + " numbers/s" },
    ],
    axes: [
      { label: "time (local)" },
      { scale: "chunks", label: "chunks/s", values: (u, ticks) => ticks.map(si) },
      { scale: "numbers", side: 1, label: "numbers/s", grid: { show: false },
        values: (u, ticks) => ticks.map(si) },
    ],
  };
  return new uPlot(opts, [[], [], []], document.getElementById("throughput"));
}

function makeHistory() {
  const dots = { show: true, size: 5 };
  const opts = {
    width: chartWidth("history"), height: 220,
    scales: { x: { time: true }, s: { range: (u, lo, hi) => [0, Math.max(0.1, hi * 1.1)] },
              n: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] } },
    series: [
      { label: "created" },
      { label: "duration", scale: "s", stroke: "#2563eb", paths: () => null, points: dots,
        value: (u, v) => v == null ? "–" : seconds(v) },
      { label: "numbers", scale: "n", stroke: "#15803d", paths: () => null, points: dots,
        value: (u, v) => v == null ? "–" : count(v) },
    ],
    axes: [
      { label: "run created (local time)" },
      { scale: "s", label: "duration (s)", values: (u, ticks) => ticks.map((t) => t + " s") },
      { scale: "n", side: 1, label: "numbers", grid: { show: false }, values: (u, t) => t.map(si) },
    ],
  };
  return new uPlot(opts, [[], [], []], document.getElementById("history"));
}

function renderThroughput(points) {
  throughputChart ??= makeThroughput();
  throughputChart.setData([points.map((p) => p[0]), points.map((p) => p[1]), points.map((p) => p[2])]);
  const last = points[points.length - 1];
  document.getElementById("rate").textContent = last ? si(last[1]) : "0";
  document.getElementById("nrate").textContent = last ? si(last[2]) : "0";
}

async function loadHistory() {
  try { historyData = await getJSON("/api/history"); } catch (error) { return; }
  if (!historyData.ready) return;
  timed("chunksum history", () => {
    historyChart ??= makeHistory();
    historyChart.setData([historyData.created, historyData.seconds, historyData.numbers]);
    document.getElementById("history-note").textContent =
      `${historyData.created.length.toLocaleString()} ended runs of the ${historyData.runs_read.toLocaleString()} newest retained; read every 10 s, and soon after a run ends`;
  });
  renderErrors();
}

// ---- runs ------------------------------------------------------------------------------

function progressCell(run) {
  const done = run.chunks ? run.done_chunks / run.chunks : 0;
  const percent = Math.round(100 * (run.status === "done" ? 1 : done));
  const td = document.createElement("td");
  const bar = document.createElement("span"), fill = document.createElement("i");
  const text = document.createElement("span");
  bar.className = "bar"; fill.style.width = percent + "%"; bar.append(fill);
  text.className = "percent"; text.textContent = percent + "%";
  td.append(bar, " ", text);
  return td;
}

function runRow(run, canCancel) {
  const tr = document.createElement("tr");
  tr.className = "run " + run.status + (run.run_id === selected ? " selected" : "");
  tr.dataset.runId = run.run_id;
  tr.append(cell(run.run_id.slice(0, 12), "id"), cell(run.status, "status-" + run.status),
            progressCell(run), cell(run.done_chunks + "/" + (run.chunks ?? "?"), "num"),
            cell(count(run.count ?? run.done_numbers), "num"), cell(run.total ?? "", "num total"),
            cell(run.finished_at ? seconds(run.finished_at - run.created_at) : "", "num"),
            cell(run.retried_chunks || "", "num retried"));
  const actions = document.createElement("td");
  if (canCancel && (run.status === "queued" || run.status === "running")) {
    const button = document.createElement("button");
    button.textContent = "cancel";
    button.onclick = (event) => { event.stopPropagation(); cancel(run.run_id); };
    actions.append(button);
  }
  tr.append(actions);
  tr.onclick = () => select(run.run_id);
  return tr;
}

function renderRuns() {
  const page = offset === 0 ? { runs: state.runs, total: state.runs_total } : olderPage;
  if (!page) return;
  document.getElementById("runs").replaceChildren(...page.runs.map((run) => runRow(run, state.can_cancel)));
  const first = page.runs.length ? offset + 1 : 0;
  document.getElementById("page-note").textContent =
    `runs ${first.toLocaleString()}–${(offset + page.runs.length).toLocaleString()} of ${page.total.toLocaleString()}`;
  document.getElementById("newer").disabled = offset === 0;
  document.getElementById("older").disabled = offset + page.runs.length >= page.total;
}

async function turnPage(delta) {
  if (!state) return;
  offset = Math.max(0, offset + delta);
  olderPage = offset === 0 ? null : await getJSON("/api/runs?offset=" + offset);
  renderRuns();
}

// ---- a run's detail and task stream -----------------------------------------------------

function fact(name, value, wide) {
  const div = document.createElement("div"), dt = document.createElement("dt");
  const dd = document.createElement("dd");
  dt.textContent = name; dd.textContent = value;
  if (wide) div.className = "wide";
  div.append(dt, dd);
  return div;
}

function renderFacts(run) {
  const took = run.finished_at ? seconds(run.finished_at - run.created_at) : "running";
  const facts = [fact("status", run.status), fact("created", when(run.created_at)),
    fact("first chunk recorded", when(run.started_at)), fact("ended", when(run.finished_at)),
    fact("took", took), fact("chunks done", run.done_chunks + " of " + (run.chunks ?? "?")),
    fact("numbers", count(run.count ?? run.done_numbers)), fact("total", run.total ?? "–"),
    fact("chunk time, summed", run.chunk_seconds == null ? "–" : seconds(run.chunk_seconds)),
    fact("longest chunk", run.chunk_seconds_max == null ? "–" : seconds(run.chunk_seconds_max)),
    fact("chunks retried", String(run.retried_chunks))];
  if (run.failed_chunk != null) facts.push(fact("failing chunk", run.failed_chunk + " on " + (run.failed_worker ?? "?")));
  if (run.error) facts.push(fact("error", run.error, true));
  document.getElementById("detail-id").textContent = run.run_id;
  document.getElementById("facts").replaceChildren(...facts);
}

function streamNote(run, spans) {
  const runs = run.done_chunks + run.retried_chunks + (run.failed_chunk != null ? 1 : 0);
  let note = `${spans.length.toLocaleString()} bars for ${runs.toLocaleString()} chunk runs`;
  if (run.span_stride > 1) note += `: a big run, so only every ${run.span_stride}th chunk's bar was kept (and every retry and failure, while there was room)`;
  if (spans.length >= state.spans_kept) note += `; a run's timeline keeps at most ${state.spans_kept.toLocaleString()} bars, later ones were not kept`;
  return note;
}

async function loadStream() {
  const id = selected;
  const [run, spans] = await Promise.all([getJSON("/api/runs/" + encodeURIComponent(id)),
                                          getJSON("/api/runs/" + encodeURIComponent(id) + "/timeline")]);
  if (id !== selected) return;
  document.getElementById("detail").hidden = false;
  renderFacts(run);
  timed("chunksum task stream", () => TaskStream.draw(document.getElementById("stream"), spans));
  document.getElementById("stream-note").textContent = streamNote(run, spans);
  clearTimeout(streamTimer);
  if (run.status === "queued" || run.status === "running") streamTimer = setTimeout(showStream, STREAM_REFRESH_MS);
}

function showStream() {
  loadStream().catch((error) => {
    document.getElementById("detail").hidden = false;
    document.getElementById("stream-note").textContent = "could not load the run: " + error.message;
  });
}

function select(runId) {
  selected = runId;
  if (state) renderRuns();
  showStream();
}

// ---- errors and workers ------------------------------------------------------------------

function renderErrors() {
  if (!state) return;
  const seen = new Set(), rows = [];
  const fresh = state.runs.filter((r) => r.status === "failed" || r.status === "cancelled");
  for (const run of [...fresh, ...(historyData?.errors ?? [])]) {
    if (seen.has(run.run_id)) continue;
    seen.add(run.run_id);
    const tr = document.createElement("tr");
    tr.className = "run"; tr.dataset.runId = run.run_id;
    tr.append(cell(run.run_id.slice(0, 12)), cell(run.status, "status-" + run.status),
              cell(when(run.finished_at)), cell(run.failed_chunk, "num failing-chunk"),
              cell(run.failed_worker), cell(run.retried_chunks || "", "num"), cell(run.error, "error"));
    tr.onclick = () => select(run.run_id);
    rows.push(tr);
  }
  document.getElementById("errors").replaceChildren(...rows);
  const total = Math.max(historyData?.errors_total ?? 0, rows.length);
  document.getElementById("errors-note").textContent = !rows.length ? "none retained"
    : `${total.toLocaleString()} failed or cancelled runs retained` + (total > rows.length ? `; the newest ${rows.length} listed` : "");
}

function renderWorkers(workers, now) {
  document.getElementById("workers").replaceChildren(...workers.map((w) => {
    const tr = document.createElement("tr");
    tr.append(cell(w.worker_id), cell(w.host), cell(w.pid, "num"), cell(seconds(now - w.started_at), "num"),
              cell(w.done, "num"), cell(w.failed, "num"), cell(w.running, "num"),
              cell(seconds(now - w.last_seen) + " ago", "num"));
    return tr;
  }));
}

function render(next) {
  if (!next.ready) return;
  timed("chunksum render", () => {
    state = next;
    document.getElementById("depth").textContent = next.queue_depth;
    document.getElementById("nworkers").textContent = next.workers.length;
    renderRuns();
    renderWorkers(next.workers, next.time);
    renderThroughput(next.throughput);
    renderErrors();
  });
}

async function cancel(runId) {
  let token = sessionStorage.getItem("chunksum-token");
  if (!token) {
    token = prompt("Cancel token (CHUNKSUM_DASHBOARD_TOKEN):");
    if (!token) return;
    sessionStorage.setItem("chunksum-token", token);
  }
  const reply = await fetch("/api/runs/" + encodeURIComponent(runId) + "/cancel",
    { method: "POST", headers: { Authorization: "Bearer " + token } });
  if (reply.status === 401) sessionStorage.removeItem("chunksum-token");
  if (!reply.ok) alert((await reply.json()).error);
}

document.getElementById("newer").onclick = () => turnPage(-state.runs_page);
document.getElementById("older").onclick = () => turnPage(state.runs_page);
TaskStream.attachTooltip(document.getElementById("stream"), document.getElementById("tip"));
window.addEventListener("resize", () => {
  throughputChart?.setSize({ width: chartWidth("throughput"), height: 220 });
  historyChart?.setSize({ width: chartWidth("history"), height: 220 });
});
setInterval(() => { if (offset > 0) turnPage(0); }, PAGE_REFRESH_MS);
setInterval(loadHistory, HISTORY_REFRESH_MS);
loadHistory();

const events = new EventSource("/events");
events.onmessage = (event) => {
  document.getElementById("stale").style.display = "none";
  render(JSON.parse(event.data));
};
events.onerror = () => { document.getElementById("stale").style.display = "block"; };

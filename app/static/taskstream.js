// A run's task stream on a canvas: one row per worker, one bar per chunk span (app.timeline),
// with a time axis in seconds and a tooltip on hover. A worker runs several chunks at once,
// so its row has a lane for each chunk it ran alongside others (the first free one is taken;
// at most MAX_LANES, then they share the last), lanes thinner as they grow many. Drawn by hand: uPlot plots series of
// points over one x axis, and bars with their own start and end on rows of workers would
// need a plugin of a few hundred lines; a canvas draws 10,000 bars in a few milliseconds.
"use strict";

const TaskStream = (() => {
  const MAX_LANES = 32, LANES_PX = 800, GAP_PX = 6, LEFT_PX = 150, AXIS_PX = 34, RIGHT_PX = 12;
  const COLOURS = { first: "#2563eb", later: "#7c3aed", retried: "#d97706", failed: "#b91c1c" };
  let bars = [];  // drawn: {x, y, w, h, span}, for hover and for tests

  function colour(span) {
    if (span.outcome === "done") return span.try > 1 ? COLOURS.later : COLOURS.first;
    return COLOURS[span.outcome] || COLOURS.failed;
  }

  function niceStep(range, ticks) {
    const raw = range / ticks, power = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  function label(seconds, step) {
    const digits = step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
    return seconds.toFixed(digits) + " s";
  }

  // Return the workers' rows, in the order they started: {name, top, lanes}, each span's lane.
  function layout(spans) {
    const ends = new Map(), lane = new Map();
    for (const span of [...spans].sort((a, b) => a.started - b.started)) {
      if (!ends.has(span.worker)) ends.set(span.worker, []);
      const lanes = ends.get(span.worker);
      let free = lanes.findIndex((end) => end <= span.started);
      if (free < 0 && lanes.length < MAX_LANES) { free = lanes.length; lanes.push(0); }
      if (free < 0) free = MAX_LANES - 1;
      lanes[free] = Math.max(lanes[free], span.finished);
      lane.set(span, free);
    }
    let lanesTotal = 0;
    for (const lanes of ends.values()) lanesTotal += lanes.length;
    const lanePx = Math.max(2, Math.min(10, Math.floor(LANES_PX / lanesTotal)));
    let top = 0;
    const rows = new Map([...ends].map(([name, lanes]) => {
      const row = { name, top, lanes: lanes.length };
      top += lanes.length * lanePx + GAP_PX;
      return [name, row];
    }));
    return { rows, lane, lanePx, height: top };
  }

  function drawAxis(ctx, width, height, t0, t1, xOf) {
    const step = niceStep(Math.max(t1 - t0, 1e-3), Math.max(2, Math.floor((width - LEFT_PX) / 90)));
    ctx.fillStyle = "#6b7280"; ctx.strokeStyle = "#d1d5db"; ctx.textAlign = "center";
    for (let t = 0; t <= t1 - t0 + 1e-9; t += step) {
      const x = xOf(t0 + t);
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, height - AXIS_PX + 4); ctx.stroke();
      ctx.fillText(label(t, step), x, height - AXIS_PX + 16);
    }
    ctx.fillText("seconds since the run's first chunk started", LEFT_PX + (width - LEFT_PX) / 2, height - 4);
  }

  function drawRows(ctx, rows, lanePx, width) {
    ctx.textAlign = "right";
    for (const row of rows.values()) {
      const middle = row.top + (row.lanes * lanePx) / 2 + 4;
      ctx.fillStyle = "#1d2430";
      ctx.fillText(row.name.length > 22 ? "…" + row.name.slice(-21) : row.name, LEFT_PX - 8, middle);
      ctx.fillStyle = "#f1f5f9";
      ctx.fillRect(LEFT_PX, row.top, width - LEFT_PX - RIGHT_PX, row.lanes * lanePx);
    }
  }

  function draw(canvas, spans) {
    const { rows, lane, lanePx, height: rowsHeight } = layout(spans);
    const dpr = window.devicePixelRatio || 1, barPx = lanePx > 4 ? lanePx - 2 : lanePx;
    const width = canvas.clientWidth, height = rowsHeight + AXIS_PX + 6;
    canvas.style.height = height + "px";
    canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "12px system-ui, sans-serif";
    bars = [];
    if (!spans.length) { canvas.dataset.bars = "0"; canvas.dataset.rows = "0"; return; }
    let t0 = Infinity, t1 = -Infinity;
    for (const s of spans) { t0 = Math.min(t0, s.started); t1 = Math.max(t1, s.finished); }
    const scale = (width - LEFT_PX - RIGHT_PX) / Math.max(t1 - t0, 1e-3);
    const xOf = (t) => LEFT_PX + (t - t0) * scale;
    drawRows(ctx, rows, lanePx, width);
    drawAxis(ctx, width, height, t0, t1, xOf);
    const perRow = new Map([...rows.keys()].map((name) => [name, 0]));
    for (const span of spans) {
      const x = xOf(span.started), w = Math.max(2, (span.finished - span.started) * scale);
      const y = rows.get(span.worker).top + lane.get(span) * lanePx + (lanePx - barPx) / 2;
      ctx.fillStyle = colour(span);
      ctx.fillRect(x, y, w, barPx);
      bars.push({ x, y, w, h: barPx, span });
      perRow.set(span.worker, perRow.get(span.worker) + 1);
    }
    canvas.dataset.bars = String(bars.length);
    canvas.dataset.rows = String(rows.size);
    canvas.dataset.barsPerRow = [...perRow.values()].join(",");
  }

  function describe(span) {
    const seconds = span.finished - span.started;
    return [`chunk ${span.chunk}  (${span.outcome})`,
            span.numbers == null ? "numbers: –" : `numbers: ${span.numbers.toLocaleString()}`,
            `on the worker: ${seconds < 1 ? (seconds * 1000).toFixed(1) + " ms" : seconds.toFixed(3) + " s"}`,
            `worker: ${span.worker}`, `try: ${span.try}`].join("\n");
  }

  function hit(x, y) {
    // the last drawn on top wins, as on screen
    for (let i = bars.length - 1; i >= 0; i--) {
      const b = bars[i];
      if (x >= b.x - 1 && x <= b.x + b.w + 1 && y >= b.y && y <= b.y + b.h) return b;
    }
    return null;
  }

  function attachTooltip(canvas, tip) {
    canvas.addEventListener("mousemove", (event) => {
      const box = canvas.getBoundingClientRect();
      const bar = hit(event.clientX - box.left, event.clientY - box.top);
      if (!bar) { tip.style.display = "none"; return; }
      tip.textContent = describe(bar.span);
      tip.style.display = "block";
      tip.style.left = Math.min(event.clientX - box.left + 12, box.width - tip.offsetWidth) + "px";
      const below = event.clientY - box.top + 14;  // above the pointer if it would spill out
      tip.style.top = (below + tip.offsetHeight > box.height ? below - tip.offsetHeight - 24 : below) + "px";
    });
    canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  }

  return { draw, attachTooltip, bars: () => bars };
})();

// A run's task stream on a canvas: one row per worker, one bar per chunk span (app.timeline),
// with a time axis in seconds and a tooltip on hover. Drawn by hand: uPlot plots series of
// points over one x axis, and bars with their own start and end on rows of workers would
// need a plugin of a few hundred lines; a canvas draws 10,000 bars in a few milliseconds.
"use strict";

const TaskStream = (() => {
  const ROW_PX = 22, BAR_PX = 14, LEFT_PX = 150, AXIS_PX = 34, RIGHT_PX = 12;
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

  function rows(spans) {
    const first = new Map();
    for (const s of spans) first.set(s.worker, Math.min(first.get(s.worker) ?? Infinity, s.started));
    return [...first.keys()].sort((a, b) => first.get(a) - first.get(b));
  }

  function drawAxis(ctx, width, height, t0, t1, xOf) {
    const step = niceStep(Math.max(t1 - t0, 1e-3), Math.max(2, Math.floor((width - LEFT_PX) / 90)));
    ctx.fillStyle = "#6b7280"; ctx.strokeStyle = "#e5e7eb"; ctx.textAlign = "center";
    for (let t = 0; t <= t1 - t0 + 1e-9; t += step) {
      const x = xOf(t0 + t);
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, height - AXIS_PX + 4); ctx.stroke();
      ctx.fillText(label(t, step), x, height - AXIS_PX + 16);
    }
    ctx.fillText("seconds since the run's first chunk started", LEFT_PX + (width - LEFT_PX) / 2, height - 4);
  }

  function draw(canvas, spans) {
    const names = rows(spans), dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = names.length * ROW_PX + AXIS_PX + 6;
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
    drawAxis(ctx, width, height, t0, t1, xOf);
    const rowOf = new Map(names.map((name, i) => [name, i]));
    ctx.textAlign = "right"; ctx.fillStyle = "#1d2430";
    names.forEach((name, i) => ctx.fillText(name.length > 22 ? "…" + name.slice(-21) : name,
                                            LEFT_PX - 8, i * ROW_PX + ROW_PX / 2 + 4));
    const perRow = names.map(() => 0);
    for (const span of spans) {
      const row = rowOf.get(span.worker);
      const x = xOf(span.started), w = Math.max(1, (span.finished - span.started) * scale);
      const y = row * ROW_PX + (ROW_PX - BAR_PX) / 2;
      ctx.fillStyle = colour(span);
      ctx.fillRect(x, y, w, BAR_PX);
      bars.push({ x, y, w, h: BAR_PX, span });
      perRow[row] += 1;
    }
    canvas.dataset.bars = String(bars.length);
    canvas.dataset.rows = String(names.length);
    canvas.dataset.barsPerRow = perRow.join(",");
  }

  function describe(span) {
    const seconds = span.finished - span.started;
    return [`chunk ${span.chunk}  (${span.outcome})`,
            span.numbers == null ? "numbers: –" : `numbers: ${span.numbers.toLocaleString()}`,
            `took: ${seconds < 1 ? (seconds * 1000).toFixed(1) + " ms" : seconds.toFixed(3) + " s"}`,
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
      tip.style.top = (event.clientY - box.top + 14) + "px";
    });
    canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  }

  return { draw, attachTooltip, bars: () => bars };
})();

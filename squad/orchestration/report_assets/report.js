// The squad run report: draws the page model (the JSON block #page-data) into the page.
// Every string from the model is model- or user-written: it reaches the DOM only through textContent
// and setAttribute, never as HTML. The timeline is one SVG <path> per lane and kind of bar, rebuilt for
// the visible time range on zoom and pan, so 20,000 events stay a few hundred DOM nodes.
"use strict";
(function () {
  const started = performance.now();
  const SVG = "http://www.w3.org/2000/svg";
  const page = JSON.parse(document.getElementById("page-data").textContent);
  const report = { ready: false, errors: [], renderMs: 0, redraws: 0, lastRedrawMs: 0 };
  window.squadReport = report;

  // ------------------------------------------------------------------ helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }
  const fmtInt = (n) => Number(n || 0).toLocaleString("en-US");
  const fmtUsd = (n) => "$" + Number(n || 0).toFixed(4);
  function fmtDur(s) {
    if (s === null || s === undefined) return "?";
    if (s < 1) return (s * 1000).toFixed(0) + " ms";
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    const m = Math.floor(s / 60), r = Math.round(s - m * 60);
    if (m < 60) return m + "m " + String(r).padStart(2, "0") + "s";
    return Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
  }
  function fmtClock(s, step) {
    if (step < 1) return s.toFixed(step < 0.1 ? 2 : 1) + "s";
    if (s < 60 && step < 60) return Math.round(s) + "s";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = Math.round(s % 60);
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(r).padStart(2, "0");
  }
  const statusClass = (s) =>
    ({ done: "ok", approved: "ok", approve: "ok", pass: "ok", reject: "bad", failed: "bad", needs_human: "bad",
      conflict: "bad", tests_failed: "bad", blocked: "bad", fail: "bad" })[s] || "warn";
  const badge = (text, cls) => el("span", { class: "badge " + (cls || statusClass(text)) }, text);
  const tokenTotal = (t) => (t || []).reduce((a, b) => a + b, 0);

  // ------------------------------------------------------------------ header and navigation

  function header() {
    const run = page.run, total = page.costs.total;
    const head = document.getElementById("head");
    head.append(
      el("h1", {}, "squad run ", el("span", { class: "mono" }, run.id), badge(run.status)),
      el("p", { class: "task" }, run.task || "(no task text)"),
      el("div", { class: "stats" },
        el("span", {}, "duration ", el("b", {}, fmtDur(run.duration_s))),
        el("span", {}, "cost ", el("b", { id: "total-cost" }, fmtUsd(total.cost_usd))),
        el("span", {}, "model calls ", el("b", {}, fmtInt(total.calls))),
        el("span", {}, "tokens in/out ", el("b", {}, fmtInt(total.input_tokens) + " / " + fmtInt(total.output_tokens))),
        el("span", {}, "cache hit rate ", el("b", {}, (100 * total.cache_hit_rate).toFixed(1) + "%")),
        el("span", {}, "tasks ", el("b", {}, String(page.tasks.length))),
        el("span", {}, "events ", el("b", {}, fmtInt(page.counts.events))),
        el("span", {}, "branch ", el("b", { class: "mono" }, run.branch)),
      ),
    );
    if (run.error) head.append(el("pre", {}, run.error));
    for (const line of run.needs_human || []) head.append(el("p", {}, badge("needs a person", "bad"), " ", line));
    if (run.next) head.append(el("p", { class: "muted" }, "next: ", el("code", {}, run.next)));
    const nav = document.getElementById("nav");
    for (const [id, text] of [["timeline", "Timeline"], ["cost", "Cost"], ["tasks", "Tasks"], ["tests", "Tests"],
      ["decisions", "Decisions"]]) nav.append(el("a", { href: "#" + id }, text));
  }

  // ------------------------------------------------------------------ timeline

  const TRACK_H = 30, LANE_PAD = 8, AXIS_H = 22, MARK_H = 7;
  // rows inside a track: [y, height] of the phase bar, the model calls and the tool calls
  const ROW = { phase: [MARK_H, 6], model: [MARK_H + 7, 10], tool: [MARK_H + 18, 6] };
  const KIND_ROW = { plan: "phase", setup: "phase", work: "phase", review: "phase", context: "phase",
    integration: "phase", model: "model", tool: "tool", tests: "tool" };
  const CLASSES = ["context", "setup", "plan", "integration", "work", "work-open", "work-rejected", "work-failed",
    "review-approve", "review-reject", "review-open", "model", "ttft", "tool", "tool-error", "tests-pass", "tests-fail"];
  function spanClass(s) {
    if (s.kind === "work") return { done: "work", rejected: "work-rejected", failed: "work-failed" }[s.state] || "work-open";
    if (s.kind === "review") return s.state === "approve" ? "review-approve" : s.state === "reject" ? "review-reject" : "review-open";
    if (s.kind === "tool") return s.error ? "tool-error" : "tool";
    if (s.kind === "tests") return s.state === "pass" ? "tests-pass" : "tests-fail";
    return s.kind;
  }

  const tl = { lanes: [], view: [0, 1], full: [0, 1], width: 0, height: 0, plot: null, svg: null, axis: null };

  function timeline() {
    const host = document.getElementById("tl");
    const labels = el("div", { class: "tl-labels" }, el("div", { class: "axis-pad", style: null }));
    labels.firstChild.style.height = AXIS_H + "px";
    const plot = el("div", { class: "tl-plot" });
    host.append(labels, plot);
    tl.plot = plot;
    tl.axis = svg("svg", { class: "axis", height: AXIS_H });
    tl.svg = svg("svg", { id: "tl-svg" });
    plot.append(tl.axis, tl.svg);
    const defs = svg("defs");
    const pat = svg("pattern", { id: "hatch-bad", width: 6, height: 6, patternUnits: "userSpaceOnUse",
      patternTransform: "rotate(45)" });
    pat.append(svg("rect", { width: 6, height: 6, fill: "#f3c5c7" }), svg("rect", { width: 3, height: 6, fill: "#d1343b" }));
    defs.append(pat);
    tl.svg.append(defs);
    tl.grid = svg("path", { class: "grid" });
    tl.svg.append(tl.grid);

    const marksByLane = new Map();
    for (const m of page.marks) {
      if (!marksByLane.has(m.lane)) marksByLane.set(m.lane, []);
      marksByLane.get(m.lane).push(m);
    }
    let y = 0, end = Math.max(page.run.duration_s || 0, 0.001);
    page.lanes.forEach((lane, i) => {
      const h = Math.max(1, lane.tracks) * TRACK_H + LANE_PAD;
      const g = svg("g", { "data-lane": lane.id, "data-kind": lane.kind, transform: "translate(0," + y + ")" });
      const bg = svg("rect", { class: "lane-bg" + (i % 2 ? " odd" : ""), x: 0, y: 0, height: h, width: "100%" });
      g.append(bg);
      const paths = {};
      for (const c of CLASSES) {
        paths[c] = svg("path", { class: "s-" + c, "data-class": c });
        g.append(paths[c]);
      }
      const marks = (marksByLane.get(lane.id) || []).slice().sort((a, b) => a.t - b.t);
      const markPaths = {};
      for (const m of marks) {
        if (!markPaths[m.kind]) {
          markPaths[m.kind] = svg("path", { class: "m-" + m.kind, "data-class": "mark-" + m.kind });
          g.append(markPaths[m.kind]);
        }
      }
      for (const s of lane.spans) end = Math.max(end, s.t1);
      tl.svg.append(g);
      const label = el("div", { class: lane.kind === "run" ? "run" : null, title: lane.id || "squad" },
        lane.kind === "run" ? "squad (integration)" : lane.id);
      label.style.height = h + "px";
      labels.append(label);
      tl.lanes.push({ lane, y, h, g, paths, marks, markPaths });
      y += h;
    });
    tl.height = y;
    tl.svg.setAttribute("height", y);
    tl.hover = svg("rect", { class: "hover", visibility: "hidden" });
    tl.svg.append(tl.hover);
    tl.full = [0, end * 1.01];
    tl.view = tl.full.slice();

    const tools = document.getElementById("tl-tools");
    const button = (text, title, fn) => {
      const b = el("button", { type: "button", title }, text);
      b.addEventListener("click", fn);
      tools.append(b);
    };
    button("Fit", "show the whole run", () => setView(tl.full[0], tl.full[1]));
    button("−", "zoom out", () => zoomAt(0.5, 2));
    button("+", "zoom in", () => zoomAt(0.5, 0.5));
    tools.append(el("span", { class: "hint" }, "drag to pan · Ctrl + wheel or double-click to zoom · click a bar to open its task"));
    legend();
    bindTimeline();
    window.addEventListener("resize", () => schedule());
    draw();
  }

  function legend() {
    const host = document.getElementById("tl-legend");
    const items = [["plan", "planning"], ["setup", "setup (worktree lease, waiting for a slot)"], ["work", "work round"],
      ["work-rejected", "rejected round"], ["review-approve", "review: approve"], ["review-reject", "review: reject"],
      ["model", "model call"], ["ttft", "time to first token"], ["tool", "tool call"], ["tool-error", "tool error"],
      ["tests-pass", "tests passed"], ["tests-fail", "tests failed"]];
    for (const [cls, text] of items) {
      const box = svg("svg", { viewBox: "0 0 22 10" });
      box.append(svg("rect", { class: "s-" + cls, x: 0, y: 1, width: 22, height: 8, rx: 2 }));
      host.append(el("span", {}, box, text));
    }
    host.append(el("span", {}, "▼ marks: lockouts, retries, merges, status changes"));
  }

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  }
  function setView(a, b) {
    const span = Math.max(b - a, 0.002), full = tl.full[1] - tl.full[0];
    if (span >= full) { a = tl.full[0]; b = tl.full[1]; } else {
      if (a < tl.full[0]) { b += tl.full[0] - a; a = tl.full[0]; }
      if (b > tl.full[1]) { a -= b - tl.full[1]; b = tl.full[1]; }
    }
    tl.view = [a, b];
    schedule();
  }
  function zoomAt(fraction, factor) {
    const [a, b] = tl.view, t = a + (b - a) * fraction;
    setView(t - (t - a) * factor, t + (b - t) * factor);
  }

  const r1 = (v) => Math.round(v * 10) / 10;
  function draw() {
    const t0 = performance.now();
    const W = Math.max(200, tl.plot.clientWidth);
    tl.width = W;
    tl.svg.setAttribute("width", W);
    tl.axis.setAttribute("width", W);
    const [a, b] = tl.view, k = W / (b - a);
    const x = (t) => (t - a) * k;
    for (const L of tl.lanes) {
      const spans = L.lane.spans, coalesce = spans.length > W;
      const out = {}, last = {};
      for (const c of CLASSES) out[c] = [];
      const rect = (cls, track, row, t1, t2) => {
        let x0 = x(t1), x1 = x(t2);
        if (x1 < 0 || x0 > W) return;
        x0 = Math.max(-1, x0); x1 = Math.min(W + 1, Math.max(x1, x0 + 1));
        const key = cls + "/" + track;
        if (coalesce && last[key] && x0 <= last[key][1] + 0.5) { last[key][1] = Math.max(last[key][1], x1); return; }
        const r = [x0, x1, track * TRACK_H + ROW[row][0], ROW[row][1]];
        out[cls].push(r);
        last[key] = r;
      };
      for (const s of spans) {
        const cls = spanClass(s), row = KIND_ROW[s.kind];
        if (!row || !out[cls]) continue;
        rect(cls, s.track, row, s.t0, s.t1);
        if (s.kind === "model" && s.ttft) rect("ttft", s.track, "model", s.t0, Math.min(s.t1, s.t0 + s.ttft));
      }
      for (const c of CLASSES) {
        L.paths[c].setAttribute("d", out[c].map((r) => "M" + r1(r[0]) + " " + r[2] + "h" + r1(r[1] - r[0]) + "v" + r[3] +
          "h" + r1(r[0] - r[1]) + "z").join(""));
      }
      const marks = {};
      for (const m of L.marks) {
        const mx = x(m.t);
        if (mx < -5 || mx > W + 5) continue;
        (marks[m.kind] = marks[m.kind] || []).push("M" + r1(mx - 4) + " 0l4 " + (MARK_H - 1) + "l4 " + (1 - MARK_H) + "z");
      }
      for (const [kind, p] of Object.entries(L.markPaths)) p.setAttribute("d", (marks[kind] || []).join(""));
    }
    axis(W, a, b, x);
    report.redraws += 1;
    report.lastRedrawMs = performance.now() - t0;
  }

  const STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400];
  function axis(W, a, b, x) {
    const want = (b - a) / Math.max(2, W / 110);
    const step = STEPS.find((s) => s >= want) || STEPS[STEPS.length - 1];
    tl.axis.replaceChildren();
    let grid = "";
    for (let t = Math.ceil(a / step) * step; t <= b; t += step) {
      const px = r1(x(t));
      const text = svg("text", { x: px + 3, y: 15 });
      text.textContent = fmtClock(t, step);
      tl.axis.append(text, svg("path", { class: "grid", d: "M" + px + " " + (AXIS_H - 6) + "v6" }));
      grid += "M" + px + " 0v" + tl.height;
    }
    tl.grid.setAttribute("d", grid);
  }

  function hit(evt) {
    const box = tl.svg.getBoundingClientRect();
    const px = evt.clientX - box.left, py = evt.clientY - box.top;
    const L = tl.lanes.find((l) => py >= l.y && py < l.y + l.h);
    if (!L) return null;
    const [a, b] = tl.view, k = tl.width / (b - a), t = a + px / k, tol = 3 / k, ly = py - L.y;
    if (ly < MARK_H) {
      let best = null;
      for (const m of L.marks) if (Math.abs(m.t - t) <= 5 / k && (!best || Math.abs(m.t - t) < Math.abs(best.t - t))) best = m;
      if (best) return { L, mark: best };
    }
    const track = Math.floor(ly / TRACK_H), inTrack = ly - track * TRACK_H;
    const row = inTrack < ROW.model[0] ? "phase" : inTrack < ROW.tool[0] - 1 ? "model" : "tool";
    let best = null, dist = Infinity;
    for (const s of L.lane.spans) {
      if (s.track !== track || KIND_ROW[s.kind] !== row || s.t0 - tol > t || s.t1 + tol < t) continue;
      const d = t < s.t0 ? s.t0 - t : t > s.t1 ? t - s.t1 : 0;
      if (d < dist || (d === dist && best && s.t1 - s.t0 < best.t1 - best.t0)) { best = s; dist = d; }
    }
    return best ? { L, span: best, row, track } : null;
  }

  function describeSpan(s) {
    const lines = [];
    const dur = fmtDur(s.t1 - s.t0) + " (at " + fmtClock(s.t0, 0.1) + ")";
    if (s.kind === "model") {
      const [i, o, cw, cr] = s.tokens || [0, 0, 0, 0];
      lines.push("model call · " + s.model, "duration " + dur + (s.ttft !== null && s.ttft !== undefined ? " · TTFT " + fmtDur(s.ttft) : ""),
        "tokens in " + fmtInt(i) + " · out " + fmtInt(o) + " · cache write " + fmtInt(cw) + " · cache read " + fmtInt(cr),
        "cost " + fmtUsd(s.cost) + " · stop " + s.stop);
    } else if (s.kind === "tool") {
      lines.push("tool " + s.name + (s.error ? " (error)" : ""), "duration " + dur);
    } else {
      lines.push(s.label || s.kind, "duration " + dur);
      if (s.state) lines.push("state " + s.state);
    }
    if (s.task) lines.push("task " + s.task + (s.lease && s.lease !== s.task ? " · lease " + s.lease : ""));
    return lines;
  }

  function showTip(evt, lines) {
    const tip = document.getElementById("tip");
    tip.replaceChildren(el("b", {}, lines[0]), lines.slice(1).join("\n"));
    tip.hidden = false;
    const w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.min(window.innerWidth - w - 8, evt.clientX + 14) + "px";
    tip.style.top = (evt.clientY + h + 20 > window.innerHeight ? evt.clientY - h - 10 : evt.clientY + 16) + "px";
  }
  function hideTip() {
    document.getElementById("tip").hidden = true;
    tl.hover.setAttribute("visibility", "hidden");
  }

  function bindTimeline() {
    const plot = tl.plot;
    let drag = null;
    plot.addEventListener("mousedown", (e) => { drag = { x: e.clientX, view: tl.view.slice(), moved: false }; });
    window.addEventListener("mouseup", () => { plot.classList.remove("dragging"); setTimeout(() => { drag = null; }, 0); });
    window.addEventListener("mousemove", (e) => {
      if (!drag || !(e.buttons & 1)) return;
      const dx = e.clientX - drag.x;
      if (Math.abs(dx) > 2) { drag.moved = true; plot.classList.add("dragging"); }
      const per = (drag.view[1] - drag.view[0]) / tl.width;
      setView(drag.view[0] - dx * per, drag.view[1] - dx * per);
    });
    plot.addEventListener("wheel", (e) => {
      const box = plot.getBoundingClientRect(), f = (e.clientX - box.left) / box.width;
      if (e.ctrlKey || e.metaKey) {
        e.preventDefault();
        zoomAt(f, Math.pow(1.0015, e.deltaY));
      } else if (Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
        e.preventDefault();
        const per = (tl.view[1] - tl.view[0]) / tl.width;
        setView(tl.view[0] + e.deltaX * per, tl.view[1] + e.deltaX * per);
      }
    }, { passive: false });
    plot.addEventListener("dblclick", (e) => {
      const box = plot.getBoundingClientRect();
      zoomAt((e.clientX - box.left) / box.width, e.shiftKey ? 2 : 0.5);
    });
    tl.svg.addEventListener("mousemove", (e) => {
      if (drag && drag.moved) return hideTip();
      const h = hit(e);
      if (!h) return hideTip();
      if (h.mark) return showTip(e, [h.mark.kind, h.mark.text, "at " + fmtClock(h.mark.t, 0.1)]);
      const [a, b] = tl.view, k = tl.width / (b - a), s = h.span, row = ROW[h.row];
      const x0 = (s.t0 - a) * k, x1 = Math.max((s.t1 - a) * k, x0 + 1);
      tl.hover.setAttribute("x", x0 - 1);
      tl.hover.setAttribute("width", x1 - x0 + 2);
      tl.hover.setAttribute("y", h.L.y + h.track * TRACK_H + row[0] - 1);
      tl.hover.setAttribute("height", row[1] + 2);
      tl.hover.setAttribute("visibility", "visible");
      showTip(e, describeSpan(s));
    });
    tl.svg.addEventListener("mouseleave", hideTip);
    tl.svg.addEventListener("click", (e) => {
      if (drag && drag.moved) return;
      const h = hit(e);
      const task = h && (h.span ? h.span.task : h.mark.task);
      if (task) openTask(task, true);
    });
  }

  // ------------------------------------------------------------------ cost and tokens

  const TOKEN_PARTS = [["input", "input_tokens"], ["cache_write", "cache_write_tokens"], ["cache_read", "cache_read_tokens"],
    ["output", "output_tokens"]];
  function costChart(title, lines, what) {
    const names = Object.keys(lines);
    const box = el("div", { class: "chart", "data-chart": what });
    box.append(el("h3", {}, title));
    const maxCost = Math.max(1e-12, ...names.map((n) => lines[n].cost_usd));
    const tok = (l) => TOKEN_PARTS.reduce((s, [, key]) => s + l[key], 0);
    const maxTok = Math.max(1, ...names.map((n) => tok(lines[n])));
    const W = 440, LBL = 120, BAR = W - LBL - 90, rowH = 40;
    const H = names.length * rowH + 6;
    const chart = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    names.forEach((n, i) => {
      const l = lines[n], y = i * rowH + 4;
      const label = svg("text", { x: 0, y: y + 12 });
      label.textContent = n.length > 18 ? n.slice(0, 17) + "…" : n;
      const full = svg("title");
      full.textContent = n;
      label.append(full);
      const cw = l.cost_usd > 0 ? Math.max(1, (BAR * l.cost_usd) / maxCost) : 0;
      const bar = svg("rect", { class: "c-cost", x: LBL, y: y + 2, width: cw, height: 12, rx: 2, "data-name": n,
        "data-cost": l.cost_usd });
      const v = svg("text", { class: "v", x: LBL + cw + 6, y: y + 12 });
      v.textContent = fmtUsd(l.cost_usd);
      chart.append(label, bar, v);
      let x = LBL;
      for (const [part, key] of TOKEN_PARTS) {
        const w = (BAR * l[key]) / maxTok;
        const seg = svg("rect", { class: "c-" + part, x, y: y + 18, width: w, height: 12, "data-name": n,
          "data-part": part, "data-tokens": l[key] });
        const tip = svg("title");
        tip.textContent = n + ": " + part.replace("_", " ") + " " + fmtInt(l[key]) + " tokens";
        seg.append(tip);
        chart.append(seg);
        x += w;
      }
      const t = svg("text", { class: "v", x: x + 6, y: y + 28 });
      t.textContent = fmtInt(tok(l)) + " tok";
      chart.append(t);
    });
    box.append(chart);
    const legendRow = el("p", { class: "muted legend" });
    for (const part of ["cost", ...TOKEN_PARTS.map((p) => p[0])]) {
      const sw = svg("svg", { width: 10, height: 10 });
      sw.append(svg("rect", { class: "c-" + part, width: 10, height: 10, rx: 2 }));
      legendRow.append(el("span", {}, sw, part === "cost" ? " cost ($)" : " " + part.replace("_", " ") + " tokens"));
    }
    box.append(legendRow);
    const table = el("table", { "data-table": what });
    table.append(el("tr", {}, ...[what, "calls", "input", "output", "cache write", "cache read", "hit rate", "cost"].map((h) => el("th", {}, h))));
    const row = (n, l, cls) => el("tr", { class: cls, "data-name": n },
      el("td", {}, n), el("td", { "data-field": "calls" }, fmtInt(l.calls)),
      el("td", { "data-field": "input_tokens" }, fmtInt(l.input_tokens)),
      el("td", { "data-field": "output_tokens" }, fmtInt(l.output_tokens)),
      el("td", { "data-field": "cache_write_tokens" }, fmtInt(l.cache_write_tokens)),
      el("td", { "data-field": "cache_read_tokens" }, fmtInt(l.cache_read_tokens)),
      el("td", {}, (100 * l.cache_hit_rate).toFixed(1) + "%"),
      el("td", { "data-field": "cost_usd", "data-value": l.cost_usd }, fmtUsd(l.cost_usd)));
    for (const n of names) table.append(row(n, lines[n], null));
    table.append(row("total", page.costs.total, "total"));
    box.append(table);
    return box;
  }
  function costs() {
    const body = document.getElementById("cost-body");
    const charts = el("div", { class: "charts" });
    charts.append(costChart("Per agent", page.costs.by_agent, "agent"), costChart("Per model", page.costs.by_model, "model"));
    body.append(charts);
    if (page.costs.total.calls && !page.costs.total.cost_usd) {
      body.append(el("p", { class: "muted" }, "All calls cost $0: scripted and replayed models are free, and a model without a known price counts as $0."));
    }
  }

  // ------------------------------------------------------------------ tasks and transcripts

  const taskCards = new Map();
  function kv(k, v) { return el("span", { class: "kv" }, k + " ", el("b", {}, v)); }
  function findingList(findings) {
    const ul = el("ul", { class: "findings" });
    for (const f of findings) {
      const where = f.file ? f.file + (f.line ? ":" + f.line : "") : "";
      ul.append(el("li", {}, el("span", { class: "sev " + f.severity }, f.severity), " ", where ? el("code", {}, where) : null,
        where ? " " : null, f.message));
    }
    return ul;
  }
  function testLine(tst) {
    return el("details", {}, el("summary", {}, badge(tst.passed ? "pass" : "fail"), " ", el("code", {}, tst.command),
      " exit " + tst.exit_code + (tst.timed_out ? " (timed out)" : "")), el("pre", {}, tst.output || "(no output)"));
  }
  function round(r) {
    const verdict = r.review && r.review.verdict;
    const box = el("div", { class: "round " + (verdict === "reject" ? "rejected" : verdict === "approve" ? "approved" : ""),
      "data-round": r.round, "data-verdict": verdict || "" });
    box.append(el("div", {}, el("b", {}, "Round " + r.round), " ", kv("by", r.author || "?"), kv("lease", r.lease || "?"),
      r.t0 !== undefined ? kv("at", fmtClock(r.t0, 0.1)) : null,
      r.t1 !== undefined && r.t0 !== undefined ? kv("took", fmtDur(r.t1 - r.t0)) : null,
      r.stop_reason ? kv("stopped", r.stop_reason) : null, r.commit ? kv("commit", r.commit.slice(0, 12)) : null));
    if (r.summary) box.append(el("p", { class: "goal" }, r.summary));
    if (r.error) box.append(el("pre", {}, r.error));
    const rv = r.review;
    if (rv) {
      if (rv.tests) box.append(testLine(rv.tests));
      box.append(el("div", {}, "Review by ", el("b", {}, rv.reviewer || "?"), " ", rv.verdict ? badge(rv.verdict) : badge("no verdict", "warn"),
        rv.summary ? " " + rv.summary : ""));
      if (rv.findings && rv.findings.length) box.append(findingList(rv.findings));
    }
    return box;
  }
  const TR_CHUNK = 200;
  function transcriptEntry(e) {
    const who = (e.agent || "") + (e.lease && e.lease !== e.agent ? " · " + e.lease : "");
    const what = el("div", { class: "what" });
    let cls = "tr-entry " + e.kind;
    if (e.kind === "model_call") {
      const [i, o, cw, cr] = e.tokens || [0, 0, 0, 0];
      what.append(el("b", {}, "model call "), el("span", { class: "muted" }, [e.model, "turn " + e.turn, "TTFT " + fmtDur(e.ttft),
        fmtDur(e.latency), "in " + fmtInt(i) + " out " + fmtInt(o) + " cache w " + fmtInt(cw) + " r " + fmtInt(cr), fmtUsd(e.cost),
        "stop " + e.stop].join(" · ")));
      if (e.text) what.append(el("pre", {}, e.text));
    } else if (e.kind === "tool_call") {
      if (e.error) cls += " error";
      what.append(el("b", {}, e.name + (e.error ? " (error)" : "")), " ", el("span", { class: "muted" },
        fmtDur(e.duration) + " · " + fmtInt(e.chars) + " chars"), el("pre", {}, e.args));
      if (e.result !== null && e.result !== undefined) what.append(el("pre", { class: "result" }, e.result));
    } else if (e.kind === "agent_stop") {
      what.append(el("b", {}, "stop: " + e.reason), " ", el("span", { class: "muted" }, "after " + e.turns + " turns"));
      if (e.summary) what.append(el("p", { class: "goal" }, e.summary));
      if (e.error) what.append(el("pre", {}, e.error));
    } else if (e.kind === "turn_start") {
      what.append(el("span", { class: "muted" }, "turn " + e.turn));
    } else {
      what.append(e.text || e.kind);
    }
    return el("div", { class: cls, "data-kind": e.kind }, el("span", { class: "when" }, fmtClock(e.t, 0.1)),
      el("span", { class: "who", title: who }, who), what);
  }
  function transcript(task, host) {
    const block = document.getElementById(page.transcript_blocks[task] || "");
    const entries = block ? JSON.parse(block.textContent) : [];
    host.replaceChildren();
    let shown = 0;
    const list = el("div", { class: "tr-list" });
    host.append(list);
    const more = el("button", { type: "button", class: "more" });
    const next = () => {
      const frag = document.createDocumentFragment();
      for (const e of entries.slice(shown, shown + TR_CHUNK)) frag.append(transcriptEntry(e));
      list.append(frag);
      shown = Math.min(entries.length, shown + TR_CHUNK);
      more.textContent = "show " + Math.min(TR_CHUNK, entries.length - shown) + " more of " + (entries.length - shown);
      more.hidden = shown >= entries.length;
    };
    more.addEventListener("click", next);
    host.append(more);
    if (!entries.length) list.append(el("p", { class: "muted" }, "No agent events for this task."));
    next();
  }
  function tasks() {
    const body = document.getElementById("tasks-body");
    if (page.plan && page.plan.text) body.append(el("p", {}, el("b", {}, "Plan (" + page.plan.agent + "): "), page.plan.text));
    if (!page.tasks.length) body.append(el("p", { class: "muted" }, "No plan was recorded."));
    for (const t of page.tasks) {
      const rejected = t.rounds.filter((r) => r.review && r.review.verdict === "reject").length;
      const card = el("details", { class: "task", id: "task-" + t.id, "data-task": t.id });
      card.append(el("summary", {}, el("span", { class: "tid mono" }, t.id), badge(t.status), el("span", { class: "muted" },
        t.agent + " · " + t.rounds.length + " round" + (t.rounds.length === 1 ? "" : "s") +
        (rejected ? " · " + rejected + " rejected" : "") + (t.merged ? " · merged" : ""))));
      card.append(el("p", { class: "goal" }, t.goal));
      if (t.files.length) card.append(el("div", {}, kv("files", t.files.join(", "))));
      if (t.depends_on.length) card.append(el("div", {}, kv("after", t.depends_on.join(", "))));
      for (const r of t.rounds) card.append(round(r));
      const trHost = el("div", { class: "transcript", "data-transcript": t.id });
      const count = page.transcript_counts[t.id] || 0;
      const open = el("button", { type: "button", class: "more", "data-open-transcript": t.id }, "Show transcript (" + count + " entries)");
      open.addEventListener("click", () => { open.hidden = true; transcript(t.id, trHost); });
      const raw = t.transcript && page.links.run_folder !== null
        ? el("a", { href: page.links.run_folder + t.transcript, class: "muted" }, "raw " + t.transcript) : null;
      card.append(el("div", {}, open, " ", raw), trHost);
      body.append(card);
      taskCards.set(t.id, { card, open });
    }
  }
  function openTask(id, withTranscript) {
    const entry = taskCards.get(id);
    if (!entry) return;
    entry.card.open = true;
    if (withTranscript && !entry.open.hidden) entry.open.click();
    entry.card.scrollIntoView({ behavior: "smooth", block: "start" });
    entry.card.classList.add("flash");
    setTimeout(() => entry.card.classList.remove("flash"), 1200);
  }
  function taskLink(id) {
    const a = el("a", { class: "tasklink", role: "link", tabindex: 0 }, id);
    a.addEventListener("click", () => openTask(id, false));
    return a;
  }

  // ------------------------------------------------------------------ tests, decisions, notes

  function tests() {
    const body = document.getElementById("tests-body");
    if (!page.tests.length) return body.append(el("p", { class: "muted" }, "No test command ran in this run."));
    const table = el("table", {}, el("tr", {}, ...["at", "task", "where", "result (click for the output)"].map((h) => el("th", {}, h))));
    for (const t of page.tests) {
      table.append(el("tr", { "data-passed": t.passed }, el("td", {}, fmtClock(t.t, 0.1)),
        el("td", { class: "wrap" }, t.task ? taskLink(t.task) : "integration"), el("td", { class: "wrap mono" }, t.where),
        el("td", { class: "wrap" }, testLine(t))));
    }
    body.append(table);
  }
  function decisions() {
    const body = document.getElementById("decisions-body");
    if (!page.decisions.length) body.append(el("p", { class: "muted" }, "No decisions were recorded in this run."));
    for (const d of page.decisions) {
      body.append(el("div", { class: "decision", "data-decision": d.id }, el("h3", {}, d.title),
        el("div", {}, kv("id", d.id), kv("by", d.agent || "?"), kv("on", d.date), d.task ? el("span", { class: "kv" }, "task ", taskLink(d.task)) : null,
          d.tags.length ? kv("tags", d.tags.join(", ")) : null, d.supersedes.length ? kv("supersedes", d.supersedes.join(", ")) : null),
        d.context ? el("p", {}, el("b", {}, "Context."), d.context) : null, el("p", {}, el("b", {}, "Decision."), d.decision),
        d.consequences ? el("p", {}, el("b", {}, "Consequences."), d.consequences) : null));
    }
  }
  function notes() {
    const items = [...page.warnings, ...page.ledger_problems.map((p) => "ledger: " + p)];
    if (!items.length) return;
    const section = document.getElementById("notes");
    section.hidden = false;
    const ul = el("ul", {});
    for (const n of items) ul.append(el("li", {}, n));
    document.getElementById("notes-body").append(ul);
  }

  // ------------------------------------------------------------------ go

  window.addEventListener("error", (e) => report.errors.push(String(e.message)));
  if (page.version !== 1) throw new Error("this report needs page model version 1, got " + page.version);
  header();
  timeline();
  costs();
  tasks();
  tests();
  decisions();
  notes();
  report.renderMs = performance.now() - started;
  report.ready = true;
  document.body.setAttribute("data-ready", "1");
})();

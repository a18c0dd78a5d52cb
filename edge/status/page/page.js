// The live status page: one snapshot, then server-sent events. Read-only; no build step.
// Written for a property manager: names from the config, units, the building's own time zone
// (never the browser's), event kinds in words (edge/events/words.py), no value beside a fault.
"use strict";
const PRIORITIES = ["telemetry", "fault", "access", "alarm"];
const MAX_EVENTS = 200, MAX_SERIES = 400, SHOWN_EVENTS = 100, HISTORY_PAGE = 20;
const FOLD_WITHIN_S = 60;  // the same event from the same place within this folds into one row with a count
const UNITS = {degC: "°C", degF: "°F", pct: "%"};
// A point in these states has no value worth showing: the sensor, the device or the power is gone.
const WITHHELD = {sensor_fault: "no reading: sensor fault", invalid: "no reading: the device voids it",
                  offline: "no reading: device not answering", stale: "no fresh reading", cut: "no power: circuit cut"};
const MODE_WORDS = {
  observe: "watching only: this model has not been shown to work on this camera's own frames; see `edge vision status`",
  hold: "holds the lift for an e-bike: the model was shown to work on this camera's own frames",
};
let state = null, series = {}, events = [], minPriority = 1, words = {};
let zone = null, stamp = null, clockOnly = null;
const history = {before: null, pages: [], rows: [], next: null, total: 0};  // pages: the `before` of each newer page

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) if (value != null) node.setAttribute(key, value);
  for (const child of children) if (child != null) node.append(child);
  return node;
}

// --- time, always in the building's zone, 24-hour, with the date ---------------------------
function useZone(name) {
  if (zone === name) return;
  const options = {hourCycle: "h23", hour: "2-digit", minute: "2-digit"};
  try {
    stamp = new Intl.DateTimeFormat("en-GB", {...options, timeZone: name, year: "numeric", month: "2-digit", day: "2-digit", second: "2-digit"});
    clockOnly = new Intl.DateTimeFormat("en-GB", {...options, timeZone: name});
    zone = name;
  } catch (unknown) {  // a zone this browser does not know: say UTC rather than the browser's own
    useZone("UTC");
  }
}
function parts(formatter, seconds) {
  return Object.fromEntries(formatter.formatToParts(new Date(seconds * 1000)).map(p => [p.type, p.value]));
}
const when = (seconds) => {
  if (seconds == null) return "-";
  const p = parts(stamp, seconds);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
};
const hhmm = (seconds) => { const p = parts(clockOnly, seconds); return `${p.hour}:${p.minute}`; };
function offset(seconds) {
  try {
    return new Intl.DateTimeFormat("en-GB", {timeZone: zone, timeZoneName: "longOffset"}).formatToParts(new Date(seconds * 1000))
      .find(p => p.type === "timeZoneName").value.replace("GMT", "UTC");
  } catch (old) { return ""; }
}
const age = (seconds) => seconds == null ? "never read" : seconds < 90 ? `${Math.round(seconds)} s ago` : seconds < 5400 ? `${Math.round(seconds / 60)} min ago` : `${(seconds / 3600).toFixed(1)} h ago`;
function lasted(seconds) {
  if (seconds == null) return "";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} days`;
}

// --- names and numbers -------------------------------------------------------------------
const unit = (u) => UNITS[u] ?? u ?? "";
function number(value, u) {
  const size = Math.abs(value), digits = size >= 100 ? 0 : size >= 10 ? 1 : 2;
  return `${Number(value).toFixed(digits)}${u ? " " + unit(u) : ""}`;
}
const sayKind = (kind) => words[kind] || kind.replace(/_/g, " ").replace(".", ": ");
function pointTitle(owner, point) {
  const p = state && state.points.find(p => p.owner === owner && p.point === point);
  return p ? p.title : null;
}
// A condition's text, led by the name a manager knows its point by instead of the wire ("f1-c1 f1-c1-monitor.current_a: ...").
function said(row) {
  const point = row.point && state && state.points.find(p => p.owner === row.source && p.point === row.point);
  const title = row.title || (point ? `${point.title} (${point.group})` : null);  // history rows: named from the snapshot
  const wire = `${row.source} ${row.point}: `;
  return title && row.text.startsWith(wire) ? `${title}: ${row.text.slice(wire.length)}` : row.text;  // a text in words stays as it is
}
const severityBadge = (severity) => el("span", {class: `sev ${severity}`, "data-severity": severity}, severity.toUpperCase());

// --- charts: axes with units and the time range ------------------------------------------
function chart(rows, limits, u) {
  const ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
  const W = 300, H = 112, left = 50, right = 294, top = 8, bottom = 86;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const node = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text != null) n.textContent = text;
    svg.append(n);
    return n;
  };
  rows = (rows || []).filter(r => r[1] != null && Number.isFinite(r[1]));
  node("line", {class: "axis", x1: left, y1: top, x2: left, y2: bottom});
  node("line", {class: "axis", x1: left, y1: bottom, x2: right, y2: bottom});
  if (rows.length < 2) {
    node("text", {x: (left + right) / 2, y: (top + bottom) / 2, "text-anchor": "middle", class: "empty"}, "not enough readings to chart");
    return svg;
  }
  let values = rows.map(r => r[1]);
  if (limits) values = values.concat([limits.warning, limits.alarm].filter(v => v != null));
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const t0 = rows[0][0], t1 = rows[rows.length - 1][0], tspan = (t1 - t0) || 1;
  const x = t => left + (t - t0) / tspan * (right - left), y = v => bottom - (v - lo) / (hi - lo) * (bottom - top);
  if (limits) {
    for (const [name, value] of [["band-warn", limits.warning], ["band-alarm", limits.alarm]]) {
      if (value == null) continue;
      const edge = y(value);
      node("rect", {class: name, x: left, width: right - left, y: limits.low ? edge : top, height: limits.low ? bottom - edge : edge - top});
    }
  }
  node("polyline", {points: rows.map(r => `${x(r[0]).toFixed(1)},${y(r[1]).toFixed(1)}`).join(" ")});
  node("text", {x: left - 4, y: top + 8, "text-anchor": "end", class: "tick y-max"}, number(hi, u));
  node("text", {x: left - 4, y: bottom, "text-anchor": "end", class: "tick y-min"}, number(lo, u));
  const tick = t1 - t0 < 600 ? (t => when(t).slice(11)) : hhmm;  // seconds on a short chart
  node("text", {x: left, y: bottom + 13, "text-anchor": "start", class: "tick x-from"}, tick(t0));
  node("text", {x: right, y: bottom + 13, "text-anchor": "end", class: "tick x-to"}, tick(t1));
  node("text", {x: (left + right) / 2, y: bottom + 24, "text-anchor": "middle", class: "tick range"},
       `the last ${lasted(t1 - t0)}, to ${when(t1).slice(0, 16)} ${zone}`);
  svg.dataset.unit = unit(u); svg.dataset.from = String(t0); svg.dataset.to = String(t1);
  return svg;
}

// --- the snapshot --------------------------------------------------------------------------
function render() {
  if (!state) return;
  useZone(state.building.timezone || "UTC");
  document.getElementById("building").textContent = state.building.name || state.building.id;
  document.getElementById("config").textContent = state.building.config ? `config ${state.building.config}` : "";
  const zoneBadge = document.getElementById("zone");
  zoneBadge.textContent = `times: ${zone} ${offset(state.now)}, 24-hour`;
  zoneBadge.dataset.zone = zone;
  const uplink = document.getElementById("uplink");
  const up = state.uplink.connected ?? (state.uplink.up !== false);
  const backlog = state.uplink.backlog ? `, ${state.uplink.backlog} events to send` : "";
  uplink.textContent = !state.uplink.enabled ? "cloud link off" : (up ? "cloud link up" : "cloud link down") + backlog;
  uplink.className = "badge " + (!state.uplink.enabled ? "" : up ? "ok" : "bad");
  const clock = document.getElementById("clock");
  const synced = state.clock.ntp_synchronised;
  clock.textContent = !state.clock.trusted ? "clock untrusted" : synced === false ? "clock not NTP-synchronised" : synced ? "clock synchronised" : "clock";
  clock.className = "badge " + (!state.clock.trusted || synced === false ? "warn" : "ok");

  const cut = state.cut_circuits || [];
  document.getElementById("cut-section").hidden = !cut.length;
  document.getElementById("cut").replaceChildren(...cut.map(c =>
    el("li", {class: "alarm", "data-circuit": c.key}, el("span", {class: "time"}, when(c.at)), " ", c.text)));
  const alarms = document.getElementById("alarms");
  alarms.replaceChildren(...(state.alarms.length ? state.alarms.map(a =>
    el("li", {class: a.severity, "data-kind": a.kind, "data-source": a.source, "data-severity": a.severity},
      severityBadge(a.severity), " ", el("span", {class: "time"}, when(a.at)), " ",
      el("span", {class: "what"}, said(a)), el("div", {class: "sub"}, sayKind(a.kind))))
    : [el("li", {class: "quiet"}, "none")]));
  const faults = state.faults || [];
  document.getElementById("faults-section").hidden = !faults.length;
  document.getElementById("faults").replaceChildren(...faults.map(f =>
    el("li", {class: "fault", "data-kind": f.kind, "data-source": f.source},
      el("span", {class: "time"}, when(f.at)), " ", said(f))));

  document.getElementById("points").replaceChildren(...state.points.map(p => {
    const withheld = WITHHELD[p.state];
    let rows = (series[p.owner] || {})[p.point] || [];
    if (!withheld && p.value != null) {  // readings are sent on change: the newest value holds until now
      if (!rows.length && p.age_s != null) rows = [[state.now - p.age_s, p.value]];
      rows = [...rows, [state.now, p.value]];
    }
    const reading = withheld ? withheld + (p.state === "stale" ? ` (last read ${age(p.age_s)})` : "")
      : p.value == null ? "no reading yet" : `${number(p.value, p.unit)}, ${age(p.age_s)}`;
    return el("div", {class: `card ${p.state}`, "data-point": p.point, "data-owner": p.owner, "data-state": p.state},
      el("span", {class: "name"}, p.title), el("span", {class: "state"}, p.state.replace("_", " ")),
      el("div", {class: "sub"}, p.group),
      el("div", {class: "reading", "data-value": withheld ? "withheld" : p.value == null ? "none" : "shown"}, reading),
      chart(rows, p.limits, p.unit));
  }));

  document.getElementById("doors").replaceChildren(...state.doors.map(d => el("div", {class: `card ${d.state}`, "data-door": d.name, "data-state": d.state},
    el("span", {class: "name"}, d.name), el("span", {class: "state"}, d.state.replace("_", " ")),
    el("div", {class: "sub"}, d.last ? `${when(d.last.at)} ${String(d.last.reason).replace(/_/g, " ")}${d.last.reader ? " at " + d.last.reader : ""}` : "no card yet"))));

  const hardware = [...state.readers.map(r => ["card reader", r]), ...state.devices.map(d => ["device", d])];
  // An unidentified device answers but its model is not known: polled by its base map only, so not plainly online.
  const shown = h => !h.online ? ["offline", "offline"] : h.unidentified ? ["warning", "unidentified"] : ["ok", "online"];
  document.getElementById("hardware").replaceChildren(...hardware.map(([kind, h]) => el("div", {class: `card ${shown(h)[0]}`, "data-hardware": h.name, "data-state": shown(h)[1]},
    el("span", {class: "name"}, h.name), el("span", {class: "state"}, shown(h)[1]),
    el("div", {class: "sub"}, `${kind}${h.detail && !h.online ? ": " + h.detail : h.unidentified ? ": model not identified (" + h.unidentified + "), polled by its base map" : ""}`))));

  document.getElementById("cameras-section").hidden = !state.cameras.length;
  const labelling = document.activeElement?.closest?.(".labelling .frame")?.dataset.frame;  // a new state keeps the operator's place
  document.getElementById("cameras").replaceChildren(...state.cameras.map(camera));
  if (labelling) document.querySelector(`.labelling .frame[data-frame="${CSS.escape(labelling)}"]`)?.focus();
  renderEvents();
}

function camera(c) {
  const shown = c.held ? "holding" : c.stream === "fault" ? "stream fault" : c.mode ? c.mode + " mode" : "not started";
  const look = c.held ? "alarm" : c.stream === "fault" || c.vision_fault ? "offline" : c.mode === "hold" ? "ok" : "";
  const detail = c.held ? `${when(c.held.since)} holding the lift for a ${c.held.class}`
    : c.stream === "fault" ? `cannot see: ${c.detail}` : c.observed ? `${when(c.observed.at)} would have held the lift for a ${c.observed.class}` : "";
  const snapshot = c.snapshot
    ? el("figure", {}, el("img", {src: `snapshots/${encodeURIComponent(c.name)}/${encodeURIComponent(c.snapshot.path.split("/").pop())}`,
                                  alt: `last snapshot of ${c.name}`, loading: "lazy"}),
         el("figcaption", {}, `last snapshot ${when(c.snapshot.at)}${c.snapshot.class ? ", " + c.snapshot.class : ""}`))
    : el("div", {class: "sub no-snapshot"}, "no snapshot yet");
  return el("div", {class: `card ${look}`, "data-camera": c.name, "data-state": shown},
    el("span", {class: "name"}, c.elevator ? `Lift ${c.elevator} (${c.name})` : c.name), el("span", {class: "state"}, shown),
    el("div", {class: "mode", "data-mode": c.mode || "none"}, c.mode ? MODE_WORDS[c.mode] || c.mode : "not started yet"),
    (c.reasons || []).length > 1
      ? el("div", {class: "sub reasons"}, `not holding, for ${c.reasons.length} reasons:`,
           el("ul", {}, ...c.reasons.map(r => el("li", {}, r))))
      : c.reason ? el("div", {class: "sub"}, `why: ${c.reason}`) : null,
    detail ? el("div", {class: "sub"}, detail) : null, reviews(c), snapshot, labelling(c));
}

// Labelling collected frames, one key a frame (the page's token only). Keys: the first letter of each.
const LABEL_KEYS = {e: "ebike", b: "bicycle", p: "stroller", w: "wheelchair", s: "kick_scooter", o: "person", n: "empty"};
const LABEL_WORDS = {ebike: "e-bike", bicycle: "bicycle", stroller: "pram/stroller", wheelchair: "wheelchair",
                     kick_scooter: "scooter", person: "person only", empty: "empty"};
const labelling_open = new Set();
const labelHolders = new Map();  // kept across renders: a new state must not reload the frames under the operator's keys

function labelling(c) {
  if (!state.writable) return null;
  if (labelHolders.has(c.name)) return labelHolders.get(c.name);
  const holder = el("div", {class: "labelling", "data-camera": c.name});
  labelHolders.set(c.name, holder);
  const toggle = el("button", {type: "button", class: "label-frames"}, labelling_open.has(c.name) ? "hide frames" : "label collected frames");
  toggle.addEventListener("click", () => {
    labelling_open.has(c.name) ? labelling_open.delete(c.name) : labelling_open.add(c.name);
    labelling_open.has(c.name) ? loadFrames(c.name, holder) : holder.replaceChildren(toggle);
    toggle.textContent = labelling_open.has(c.name) ? "hide frames" : "label collected frames";
  });
  holder.append(toggle);
  if (labelling_open.has(c.name)) loadFrames(c.name, holder);
  return holder;
}

async function loadFrames(camera, holder) {
  const answer = await fetch(`api/cameras/${encodeURIComponent(camera)}/frames`).then(r => r.json());
  const toggle = holder.querySelector("button.label-frames");
  const help = el("div", {class: "sub"}, "click a frame (drag on it to draw a box), then a key: " +
    Object.entries(LABEL_KEYS).map(([k, v]) => `${k} ${LABEL_WORDS[v]}`).join(", "));
  const tiles = answer.frames.map(f => frameTile(camera, f));
  holder.replaceChildren(toggle, help, el("div", {class: "frames"}, ...tiles));
  if (tiles.length) tiles.find(t => !t.dataset.label)?.focus();
}

function frameTile(camera, f) {
  const img = el("img", {src: `frames/${encodeURIComponent(camera)}/${f.kind}/${encodeURIComponent(f.name)}`, alt: f.name, draggable: "false"});
  const said = el("div", {class: "sub said"}, f.label ? `${LABEL_WORDS[f.label.label]} (${f.label.by})` : f.detector ? `detector: ${f.detector.class}` : "not labelled");
  const tile = el("div", {class: "frame", tabindex: "0", "data-frame": f.frame, "data-label": f.label ? f.label.label : null}, img, said);
  let start = null;
  const at = e => { const r = img.getBoundingClientRect(); return [Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (e.clientY - r.top) / r.height))]; };
  img.addEventListener("mousedown", e => { start = at(e); e.preventDefault(); tile.focus(); });
  img.addEventListener("mouseup", e => {
    if (!start) return;
    const end = at(e);
    const box = [Math.min(start[0], end[0]), Math.min(start[1], end[1]), Math.max(start[0], end[0]), Math.max(start[1], end[1])];
    start = null;
    if (box[2] - box[0] > 0.01 && box[3] - box[1] > 0.01) { tile.box = box; said.textContent = "box drawn: now a key"; }
  });
  tile.addEventListener("keydown", e => {
    const label = LABEL_KEYS[e.key];
    if (!label) return;
    e.preventDefault();
    const box = label === "empty" ? null : tile.box || (f.detector && f.detector.box) || null;
    sendLabel(camera, f.frame, label, box, tile, said);
  });
  return tile;
}

async function sendLabel(camera, frame, label, box, tile, said) {
  const operator = localStorage.getItem("edge-operator") || prompt("Your name or staff id (journaled with each label)");
  if (!operator) return;
  localStorage.setItem("edge-operator", operator);
  const answer = await fetch(`api/cameras/${encodeURIComponent(camera)}/label`, {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({frame, label, box, operator})});
  const body = await answer.json().catch(() => ({}));
  said.textContent = answer.ok ? `${LABEL_WORDS[label]}${box ? " (box)" : ""} (${operator})` : `not saved: ${body.error || answer.status}`;
  if (answer.ok) {
    tile.dataset.label = label;
    let next = tile.nextElementSibling;
    while (next && next.dataset.label) next = next.nextElementSibling;
    (next || tile).focus();
  }
}

// A hold awaits an operator's review; the page offers it only with its token (state.writable).
const REVIEW_CHOICES = [["confirm", "ebike", "right: an e-bike"], ["deny", "stroller", "wrong: a pram"],
  ["deny", "wheelchair", "wrong: a wheelchair"], ["deny", "bicycle", "wrong: a bicycle"], ["deny", "person", "wrong: people only"],
  ["deny", "other", "wrong: something else"]];

function reviews(c) {
  if (!state.writable || !(c.reviews || []).length) return null;
  return el("div", {class: "reviews"}, el("div", {class: "sub"}, "holds awaiting your review:"),
    ...c.reviews.map(r => el("div", {class: "review", "data-hold": String(r.seq)}, `${when(r.at)} held for a ${r.class}: `,
      ...REVIEW_CHOICES.map(([outcome, seen, label]) => {
        const button = el("button", {type: "button", "data-seen": seen}, label);
        button.addEventListener("click", () => sendReview(c.name, r.seq, outcome, seen, button));
        return button;
      }))));
}

async function sendReview(camera, hold, outcome, seen, button) {
  const operator = localStorage.getItem("edge-operator") || prompt("Your name or staff id (journaled with the review)");
  if (!operator) return;
  localStorage.setItem("edge-operator", operator);
  const answer = await fetch(`api/cameras/${encodeURIComponent(camera)}/review`, {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({hold, outcome, seen, operator})});
  const said = await answer.json().catch(() => ({}));
  button.parentNode.replaceChildren(answer.ok
    ? `reviewed by ${operator}: ${outcome === "confirm" ? "confirmed" : "denied, " + seen}${said.demoted ? "; the camera now only watches: " + said.demoted : ""}`
    : `not saved: ${said.error || answer.status}`);
}

// --- events: in words, repeats folded -------------------------------------------------------
function detailOf(e) {
  const body = e.body || {};
  const title = body.point ? pointTitle(e.source, body.point) : null;
  const said = body.reason || body.condition || body.detail || body.fault || body.text || "";
  return [title, String(said).replace(/_/g, " ")].filter(Boolean).join(": ");
}

// Where an event happened: a water point by what it measures, a circuit as "Circuit f1-c1, floor 1, box F1".
function place(source) {
  const owned = state.points.filter(p => p.owner === source);
  if (!owned.length) return source;
  return owned.length === 1 ? owned[0].title : owned[0].group;
}

function renderEvents() {
  if (!state) return;  // times need the building's zone
  const rows = [];
  for (const e of events) {
    if (PRIORITIES.indexOf(e.priority) < minPriority) continue;
    const at = Date.parse(e.time) / 1000, detail = detailOf(e), last = rows[rows.length - 1];
    if (last && last.kind === e.kind && last.source === e.source && last.detail === detail && last.oldest - at <= FOLD_WITHIN_S) {
      last.count += 1; last.oldest = at;
      continue;
    }
    if (rows.length >= SHOWN_EVENTS) break;
    rows.push({kind: e.kind, source: e.source, detail, at, oldest: at, count: 1, priority: e.priority});
  }
  document.getElementById("events").replaceChildren(...rows.map(r => el("tr", {class: `p${PRIORITIES.indexOf(r.priority)}`, "data-kind": r.kind, "data-count": r.count},
    el("td", {class: "time"}, when(r.at)), el("td", {}, sayKind(r.kind)), el("td", {}, place(r.source)), el("td", {}, r.detail),
    el("td", {class: "count"}, r.count > 1 ? `×${r.count}` : ""))));
}

// --- the alarm history: the last 7 days from the journal, paged --------------------------------
async function loadHistory(before) {
  const answer = await fetch(`api/alarms?limit=${HISTORY_PAGE}${before != null ? "&before=" + before : ""}`).then(r => r.json());
  history.before = before; history.rows = answer.rows; history.next = answer.next; history.total = answer.total;
  history.complete = answer.complete;
  renderHistory();
}

function renderHistory() {
  if (!state) return;
  const body = document.getElementById("history");
  body.replaceChildren(...(history.rows.length ? history.rows.map(r => el("tr", {class: r.severity, "data-kind": r.kind, "data-seq": r.seq},
    el("td", {class: "time"}, when(r.at)), el("td", {}, severityBadge(r.severity)),
    el("td", {}, el("span", {class: "what"}, said(r)), el("div", {class: "sub"}, sayKind(r.kind))),
    el("td", {class: "time"}, r.ended_at == null ? "still active" : when(r.ended_at)),
    el("td", {}, lasted((r.ended_at ?? state.now) - r.at))))
    : [el("tr", {}, el("td", {colspan: 5, class: "quiet"}, "no alarms in the last 7 days"))]));
  const total = history.total || 0;
  document.getElementById("history-note").textContent = `${total} alarm${total === 1 ? "" : "s"} and warning${total === 1 ? "" : "s"} in the last 7 days`
    + (history.complete === false ? " (at least: the week holds more than one answer reads)" : "")
    + (history.pages.length ? `, page ${history.pages.length + 1}` : "");
  document.getElementById("history-older").hidden = history.next == null;
  document.getElementById("history-newer").hidden = !history.pages.length;
  body.dataset.loaded = "true";
}

function addReading(r) {
  const rows = ((series[r.owner] ||= {})[r.point] ||= []);
  rows.push([r.at, r.value]);
  if (rows.length > MAX_SERIES) rows.splice(0, rows.length - MAX_SERIES);
}

async function start() {
  document.getElementById("priority").addEventListener("change", e => { minPriority = Number(e.target.value); renderEvents(); });
  document.getElementById("history-older").addEventListener("click", () => {
    history.pages.push(history.before);
    loadHistory(history.next).catch(() => {});
  });
  document.getElementById("history-newer").addEventListener("click", () => loadHistory(history.pages.pop()).catch(() => {}));
  try {
    const [table, chartRows, recent] = await Promise.all([
      fetch("api/words").then(r => r.json()), fetch("api/history?hours=6").then(r => r.json()),
      fetch("api/events?priority=fault&limit=200").then(r => r.json())]);
    words = table; series = chartRows; events = recent;
  } catch (error) { /* the stream still brings what happens from now on */ }
  let historyDue = null;
  const link = document.getElementById("link"), stream = new EventSource("api/stream");
  stream.addEventListener("open", () => { link.textContent = "live"; link.className = "badge ok"; });
  stream.addEventListener("error", () => { link.textContent = "reconnecting…"; link.className = "badge bad"; });
  stream.addEventListener("state", m => {
    const first = state === null;
    state = JSON.parse(m.data); render();
    if (first) loadHistory(null).catch(() => {});
  });
  stream.addEventListener("reading", m => addReading(JSON.parse(m.data)));
  stream.addEventListener("journal", m => {
    const e = JSON.parse(m.data);
    if (!events.some(seen => seen.seq === e.seq)) { events.unshift(e); events.length = Math.min(events.length, MAX_EVENTS); }
    renderEvents();
    if (e.priority === "alarm" && !history.pages.length && historyDue === null) {  // the first page follows new alarms
      historyDue = setTimeout(() => { historyDue = null; loadHistory(null).catch(() => {}); }, 1000);
    }
  });
}
start();

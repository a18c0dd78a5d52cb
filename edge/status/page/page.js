// The live status page: one snapshot, then server-sent events. Read-only; no build step.
"use strict";
const PRIORITIES = ["telemetry", "fault", "access", "alarm"];
const MAX_EVENTS = 200, MAX_SERIES = 400;
let state = null, series = {}, events = [], minPriority = 1;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}
const when = (seconds) => seconds ? new Date(seconds * 1000).toLocaleTimeString() : "-";
const age = (seconds) => seconds == null ? "never" : seconds < 90 ? `${Math.round(seconds)} s ago` : `${Math.round(seconds / 60)} min ago`;

function chart(rows, limits) {
  const ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 200 40"); svg.setAttribute("preserveAspectRatio", "none");
  if (!rows || rows.length < 2) return svg;
  let values = rows.map(r => r[1]);
  if (limits) values = values.concat([limits.warning, limits.alarm].filter(v => v != null));
  const lo = Math.min(...values), hi = Math.max(...values), span = (hi - lo) || 1;
  const t0 = rows[0][0], t1 = rows[rows.length - 1][0], tspan = (t1 - t0) || 1;
  const y = v => 38 - ((v - lo) / span) * 36;
  if (limits) {
    for (const [name, value] of [["band-warn", limits.warning], ["band-alarm", limits.alarm]]) {
      if (value == null) continue;
      const rect = document.createElementNS(ns, "rect"), edge = y(value);
      rect.setAttribute("class", name); rect.setAttribute("x", 0); rect.setAttribute("width", 200);
      rect.setAttribute("y", limits.low ? edge : 0); rect.setAttribute("height", limits.low ? 40 - edge : edge);
      svg.append(rect);
    }
  }
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", rows.map(r => `${((r[0] - t0) / tspan * 200).toFixed(1)},${y(r[1]).toFixed(1)}`).join(" "));
  svg.append(line);
  return svg;
}

function render() {
  if (!state) return;
  document.getElementById("building").textContent = state.building.name || state.building.id;
  const uplink = document.getElementById("uplink");
  const up = state.uplink.connected ?? (state.uplink.up !== false);
  const backlog = state.uplink.backlog ? `, ${state.uplink.backlog} events to send` : "";
  uplink.textContent = !state.uplink.enabled ? "uplink off" : (up ? "uplink up" : "uplink down") + backlog;
  uplink.className = "badge " + (!state.uplink.enabled ? "" : up ? "ok" : "bad");
  const clock = document.getElementById("clock");
  const synced = state.clock.ntp_synchronised;
  clock.textContent = !state.clock.trusted ? "clock untrusted" : synced === false ? "clock not NTP-synchronised" : synced ? "clock synchronised" : "clock";
  clock.className = "badge " + (!state.clock.trusted || synced === false ? "warn" : "ok");

  const cut = state.cut_circuits || [];
  document.getElementById("cut-section").hidden = !cut.length;
  document.getElementById("cut").replaceChildren(...cut.map(c =>
    el("li", {class: "alarm", "data-circuit": c.key}, `${when(c.at)}  ${c.text}`)));
  const alarms = document.getElementById("alarms");
  alarms.replaceChildren(...(state.alarms.length ? state.alarms.map(a =>
    el("li", {class: a.severity, "data-kind": a.kind, "data-source": a.source, "data-severity": a.severity},
      `${when(a.at)}  ${a.severity}: ${a.text}`)) : [el("li", {class: "quiet"}, "none")]));
  const faults = state.faults || [];
  document.getElementById("faults-section").hidden = !faults.length;
  document.getElementById("faults").replaceChildren(...faults.map(f =>
    el("li", {class: "fault", "data-kind": f.kind, "data-source": f.source}, `${when(f.at)}  ${f.text}`)));

  document.getElementById("doors").replaceChildren(...state.doors.map(d => el("div", {class: `card ${d.state}`, "data-door": d.name, "data-state": d.state},
    el("span", {class: "name"}, d.name), el("span", {class: "state"}, d.state.replace("_", " ")),
    el("div", {class: "sub"}, d.last ? `${when(d.last.at)} ${d.last.reason}${d.last.reader ? " at " + d.last.reader : ""}` : "no card yet"))));

  const hardware = [...state.readers.map(r => ["reader", r]), ...state.devices.map(d => ["device", d])];
  document.getElementById("hardware").replaceChildren(...hardware.map(([kind, h]) => el("div", {class: `card ${h.online ? "ok" : "offline"}`, "data-hardware": h.name},
    el("span", {class: "name"}, h.name), el("span", {class: "state"}, h.online ? "online" : "offline"),
    el("div", {class: "sub"}, `${kind}${h.detail && !h.online ? ": " + h.detail : ""}`))));

  document.getElementById("points").replaceChildren(...state.points.map(p => {
    const rows = (series[p.owner] || {})[p.point] || [];
    const value = p.value == null ? "-" : `${Number(p.value).toFixed(2)} ${p.unit}`;
    return el("div", {class: `card ${p.state}`, "data-point": p.point, "data-state": p.state},
      el("span", {class: "name"}, `${p.owner} ${p.point.split(".")[1]}`), el("span", {class: "state"}, p.state.replace("_", " ")),
      el("div", {class: "sub"}, `${p.quantity.replace("_", " ") || p.point}: ${value}, ${age(p.age_s)}`), chart(rows, p.limits));
  }));
  document.getElementById("cameras-section").hidden = !state.cameras.length;
  document.getElementById("cameras").replaceChildren(...state.cameras.map(c => {
    const shown = c.held ? "holding" : c.stream === "fault" ? "stream fault" : c.mode ? c.mode + " mode" : "not started";
    const look = c.held ? "alarm" : c.stream === "fault" || c.vision_fault ? "offline" : c.mode === "hold" ? "ok" : "";
    const detail = c.held ? `${when(c.held.since)} held for a ${c.held.class}`
      : c.stream === "fault" ? c.detail : c.observed ? `${when(c.observed.at)} would have held for a ${c.observed.class}; ${c.reason}` : c.reason || "";
    return el("div", {class: `card ${look}`, "data-camera": c.name, "data-state": shown},
      el("span", {class: "name"}, c.elevator ? `${c.elevator} (${c.name})` : c.name), el("span", {class: "state"}, shown),
      el("div", {class: "sub"}, detail || ""));
  }));
  renderEvents();
}

function renderEvents() {
  const shown = events.filter(e => PRIORITIES.indexOf(e.priority) >= minPriority).slice(0, 100);
  document.getElementById("events").replaceChildren(...shown.map(e => el("tr", {class: `p${PRIORITIES.indexOf(e.priority)}`, "data-kind": e.kind},
    el("td", {}, new Date(e.time).toLocaleTimeString()), el("td", {}, e.priority), el("td", {}, e.kind), el("td", {}, e.source),
    el("td", {}, e.body.reason || e.body.condition || e.body.detail || ""))));
}

function addReading(r) {
  const rows = ((series[r.owner] ||= {})[r.point] ||= []);
  rows.push([r.at, r.value]);
  if (rows.length > MAX_SERIES) rows.splice(0, rows.length - MAX_SERIES);
}

async function start() {
  document.getElementById("priority").addEventListener("change", e => { minPriority = Number(e.target.value); renderEvents(); });
  try {
    const [history, recent] = await Promise.all([fetch("api/history?hours=6").then(r => r.json()), fetch("api/events?priority=fault&limit=100").then(r => r.json())]);
    series = history; events = recent.reverse();
  } catch (error) { /* the stream still brings what happens from now on */ }
  const link = document.getElementById("link"), stream = new EventSource("api/stream");
  stream.addEventListener("open", () => { link.textContent = "live"; link.className = "badge ok"; });
  stream.addEventListener("error", () => { link.textContent = "reconnecting…"; link.className = "badge bad"; });
  stream.addEventListener("state", m => { state = JSON.parse(m.data); render(); });
  stream.addEventListener("reading", m => addReading(JSON.parse(m.data)));
  stream.addEventListener("journal", m => {
    const e = JSON.parse(m.data);
    if (!events.some(seen => seen.seq === e.seq)) { events.unshift(e); events.length = Math.min(events.length, MAX_EVENTS); }
    renderEvents();
  });
}
start();

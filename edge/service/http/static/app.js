// emopi live view: polls /api/state once a second, follows /api/events (SSE) and shows the
// MJPEG stream. Plain JavaScript, no library: the page works on an offline kiosk.
"use strict";

const COLORS = {
  angry: "#e5534b", disgust: "#8fbc3b", fear: "#a371f7", happy: "#f2cc60",
  sad: "#539bf5", surprise: "#f69d50", neutral: "#adbac7", none: "#2d333b",
};
const token = new URLSearchParams(location.search).get("token");
const withToken = (url) =>
  token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
const $ = (id) => document.getElementById(id);
let videoStarted = false;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const pct = (x) => Math.round(x * 100) + "%";

function renderFaces(faces) {
  const box = $("faces");
  box.replaceChildren();
  $("face-count").textContent = faces.filter((f) => f.emotion).length;
  if (!faces.length) {
    box.append(el("p", { class: "note" }, "Nobody in view."));
    return;
  }
  for (const face of faces) {
    const pending = !face.emotion;
    const title = pending ? `#${face.track_id} …` : `#${face.track_id} ${face.emotion} ${pct(face.confidence)}`;
    const card = el("div", { class: pending ? "face pending" : "face", "data-track": face.track_id },
      el("div", { class: "title" }, title));
    const probs = Object.entries(face.probs || {}).sort((a, b) => b[1] - a[1]);
    for (const [label, p] of probs) {
      card.append(el("div", { class: "bar" }, label,
        el("div", { class: "track" },
          el("div", { class: "fill", style: `width:${pct(p)};background:${COLORS[label] || "#888"}` })),
        pct(p)));
    }
    box.append(card);
  }
}

function renderTimeline(points) {
  const canvas = $("timeline");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, band = 36;
  ctx.clearRect(0, 0, w, h);
  canvas.dataset.points = points.length;
  if (points.length < 1) return;
  const t1 = points[points.length - 1][0];
  const t0 = Math.min(points[0][0], t1 - 60);
  const x = (t) => ((t - t0) / Math.max(t1 - t0, 1)) * (w - 1);
  const maxFaces = Math.max(1, ...points.map((p) => p[1]));
  points.forEach(([t, , dominant], i) => {  // dominant emotion: a coloured band
    const next = i + 1 < points.length ? points[i + 1][0] : t + 1;
    ctx.fillStyle = COLORS[dominant || "none"];
    ctx.fillRect(Math.floor(x(t)), 0, Math.ceil(x(next) - x(t)) + 1, band);  // no seams
  });
  ctx.strokeStyle = "#e6e6e6";  // face count: a step line under the band
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach(([t, n], i) => {
    const y = h - 8 - (n / maxFaces) * (h - band - 24);
    if (i === 0) ctx.moveTo(x(t), y);
    else ctx.lineTo(x(t), y);
  });
  ctx.stroke();
  ctx.fillStyle = "#9aa4ad";
  ctx.font = "12px sans-serif";
  ctx.fillText(`faces (max ${maxFaces})`, 4, band + 14);
  ctx.fillText("now", w - 28, h - 4);
  ctx.fillText(new Date(t0 * 1000).toLocaleTimeString(), 4, h - 4);
  $("timeline-span").textContent = `last ${Math.round((t1 - t0) / 60)} min`;
}

function renderLegend() {
  $("legend").replaceChildren(...Object.entries(COLORS).map(([name, color]) =>
    el("span", {}, el("i", { style: `background:${color}` }), name)));
}

function addEvent(event) {
  const when = new Date(event.ts * 1000).toLocaleTimeString();
  const what = event.type === "update" ? `${event.before} → ${event.emotion}` : event.emotion;
  const item = el("li", { "data-seq": event.seq },
    el("span", { class: "type" }, event.type), `${when} #${event.track_id} ${what} ${pct(event.confidence)}`);
  const list = $("events");
  list.prepend(item);
  while (list.children.length > 30) list.lastChild.remove();
}

function fmt(value, unit = "") {
  return value === null || value === undefined ? "–" : `${value}${unit}`;
}

function renderHealth(health) {
  const rows = [
    ["status", health.status],
    ["fps", fmt(health.fps)],
    ...Object.entries(health.stage_ms || {}).map(([stage, ms]) => [`${stage} ms`, ms.toFixed(2)]),
    ["dropped frames", health.dropped_frames],
    ["camera", health.camera],
    ["MQTT", health.mqtt ? (health.mqtt.broker_connected ? "connected" : "NOT connected") : "off"],
    ["spool depth", health.mqtt ? health.mqtt.spool_depth : "–"],
    ["uptime", formatUptime(health.uptime_s)],
    ["CPU temperature", fmt(health.cpu_temp_c, " °C")],
    ["throttling", throttling(health.throttling)],
    ["viewers", health.viewers],
    ["refused requests (token)", health.http_unauthorized],
  ];
  $("health").tBodies[0].replaceChildren(...rows.map(([k, v]) =>
    el("tr", { "data-key": k }, el("td", {}, k), el("td", {}, String(v)))));
  const badge = $("status");
  badge.textContent = health.ok ? `live · ${health.fps} fps` : health.status;
  badge.className = health.ok ? "badge ok" : "badge bad";
}

function throttling(t) {
  if (!t) return "not readable here";
  const now = t.now.length ? `now: ${t.now.join(", ")}` : "none now";
  return t.since_boot.length ? `${now}; since boot: ${t.since_boot.join(", ")}` : now;
}

function formatUptime(s) {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${Math.floor(s % 60)} s` : `${Math.floor(s)} s`;
}

let serverLost = false;

function startVideo(on) {
  if (videoStarted && !serverLost) return;  // after a restart of emopi: open the stream again
  videoStarted = true;
  serverLost = false;
  $("video").hidden = !on;
  $("video-off").hidden = on;
  if (on) $("video").src = withToken("stream.mjpg?t=" + Date.now());
}

async function poll() {
  try {
    const response = await fetch(withToken("api/state"), { cache: "no-store" });
    if (response.status === 401) throw new Error("token needed: open the page with ?token=…");
    const state = await response.json();
    startVideo(state.video);
    $("device").textContent = state.device_id;
    renderFaces(state.faces);
    renderTimeline(state.timeline);
    renderHealth(state.health);
  } catch (err) {
    serverLost = true;
    $("status").textContent = String(err.message || err);
    $("status").className = "badge bad";
  }
}

function followEvents() {
  const source = new EventSource(withToken("api/events?since=0"))  // the kept ones, then live;
  source.onmessage = (message) => addEvent(JSON.parse(message.data));
}

renderLegend();
poll().then(followEvents);
setInterval(poll, 1000);

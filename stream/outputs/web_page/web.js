// The browser view of htsat-live (stream/outputs/web.py serves it): the live timeline of each stream drawn on a
// canvas at the screen's refresh rate, the confirmed events, each stream's status, and the event history with its
// clips. Live messages come as Server-Sent Events from /live; the browser reconnects by itself and the page says so.
"use strict";

const ROWS = 6; // classes drawn per stream: the highest scores in view
const LANE = 20; // pixels of the events lane under the rows
const SILENT_S = 5; // no status for this long: the detector is said to be silent
const MAX_EVENTS = 50; // entries of the events list

const streamsBox = document.getElementById("streams");
const eventsList = document.getElementById("events");
const linkBadge = document.getElementById("link");
const filters = document.getElementById("filters");
const historyBody = document.querySelector("#history tbody");
const historyCount = document.getElementById("history-count");

const streams = new Map(); // stream name -> StreamView
const listed = new Map(); // event key -> its <li>
let source = null;
let opened = 0; // times the live link opened
let lastStatus = 0; // performance.now() of the newest status
let relay = null; // the link of `web --connect` to its detector: {text, healthy}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

function clock(wall) {
  return new Date(wall * 1000).toLocaleTimeString([], { hour12: false });
}

function setLink(state, text) {
  linkBadge.className = `link ${state}`;
  linkBadge.textContent = text;
}

// One stream: its timeline (a ring of the last seconds of scores per class), its events lane and its status line.
class StreamView {
  constructor(name, seconds) {
    this.name = name;
    this.seconds = seconds;
    this.section = element("section", { class: "stream", "data-stream": name });
    const heading = element("h2");
    heading.append(element("span", {}, name));
    this.section.append(heading);
    this.canvas = element("canvas", { "aria-label": `live timeline of ${name}` });
    this.status = element("p", { class: "status" }, "no status yet");
    this.section.append(this.canvas, this.status);
    document.getElementById("no-streams")?.remove();
    streamsBox.append(this.section);
    this.reset();
  }

  reset() {
    this.classes = new Map(); // class index -> {label, colour, values}
    this.rows = [];
    this.events = new Map(); // event key -> report
    this.gridEnd = 0;
    this.filledTo = 0;
    this.frameSeconds = 10 / 1024;
    this.hop = 1;
    this.size = 0;
    this.receivedAt = 0;
  }

  scores(m) {
    if (!this.size || m.frame_seconds !== this.frameSeconds || m.seconds !== this.seconds) {
      this.seconds = m.seconds;
      this.frameSeconds = m.frame_seconds;
      this.size = Math.ceil((this.seconds + 2 * m.hop) / m.frame_seconds);
      this.classes.clear();
      this.filledTo = m.grid_start;
    }
    if (m.grid_end + this.size < this.gridEnd) this.restart(m); // the stream started again
    this.hop = m.hop;
    const upto = m.grid_start + m.frames.length;
    for (let frame = Math.max(this.filledTo, upto - this.size); frame < upto; frame++) {
      for (const row of this.classes.values()) row.values[frame % this.size] = 0; // frames new to the ring
    }
    this.filledTo = Math.max(this.filledTo, upto);
    m.classes.forEach((index, column) => {
      let row = this.classes.get(index);
      if (!row) {
        row = { index, label: m.labels[column], colour: m.colours[column], values: new Float32Array(this.size) };
        this.classes.set(index, row);
      }
      m.frames.forEach((values, offset) => {
        row.values[(m.grid_start + offset) % this.size] = values[column] ?? 0;
      });
    });
    if (m.grid_end >= this.gridEnd) {
      this.gridEnd = m.grid_end;
      this.receivedAt = performance.now();
    }
    this.chooseRows();
  }

  restart(m) {
    const seconds = this.seconds;
    this.reset();
    this.seconds = seconds;
    this.frameSeconds = m.frame_seconds;
    this.size = Math.ceil((this.seconds + 2 * m.hop) / m.frame_seconds);
    this.filledTo = m.grid_start;
  }

  chooseRows() {
    const from = Math.max(0, this.gridEnd - Math.round(this.seconds / this.frameSeconds));
    const peaks = [];
    for (const row of this.classes.values()) {
      let peak = 0;
      for (let frame = Math.max(from, this.gridEnd - this.size); frame < this.gridEnd; frame++) {
        peak = Math.max(peak, row.values[frame % this.size]);
      }
      peaks.push([peak, row]);
    }
    peaks.sort((a, b) => b[0] - a[0]);
    this.rows = peaks.slice(0, ROWS).map(([, row]) => row);
  }

  event(m, key) {
    if (m.cancelled) this.events.delete(key);
    else this.events.set(key, m);
  }

  showStatus(m) {
    const counters = m.counters || {};
    const dropped = Object.values(m.dropped || {}).reduce((sum, value) => sum + value, 0);
    const p95 = m.latency && m.latency.hop_p95 != null ? `${m.latency.hop_p95.toFixed(2)} s` : "–";
    const parts = [
      `${m.source_state}`,
      `level ${m.level_dbfs != null ? m.level_dbfs.toFixed(1) : "–"} dBFS`,
      `${m.backend} on ${m.device}`,
      `hop ${m.hop} s`,
      `latency p95 ${p95}`,
      `events ${counters.confirmed_events ?? 0}`,
      `dropped ${dropped}`,
    ];
    if (m.web) parts.push(`page dropped ${m.web.dropped + m.web.backlog_dropped}`);
    this.status.replaceChildren(parts.join(" · "));
    const problems = ["skipped_windows", "failed_windows", "overruns", "input_overflows"]
      .filter((name) => counters[name])
      .map((name) => `${name.replace("_", " ")} ${counters[name]}`);
    if (m.error) problems.push(`error: ${m.error}`);
    if (problems.length) this.status.append(" · ", element("span", { class: "problem" }, problems.join(" · ")));
  }

  draw(now) {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(canvas.clientWidth * ratio);
    const height = Math.round(canvas.clientHeight * ratio);
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const context = canvas.getContext("2d");
    context.clearRect(0, 0, width, height);
    if (!this.size) return;
    const visible = this.seconds / this.frameSeconds; // frames across the canvas
    const lead = Math.min((now - this.receivedAt) / 1000, this.hop) / this.frameSeconds; // audio since the scores
    const left = this.gridEnd + lead - visible;
    const perPixel = visible / width;
    const lane = LANE * ratio;
    const rowHeight = (height - lane) / ROWS;
    const oldest = this.gridEnd - this.size;
    context.font = `${11 * ratio}px system-ui, sans-serif`;
    this.rows.forEach((row, i) => {
      const bottom = (i + 1) * rowHeight;
      context.fillStyle = row.colour;
      context.beginPath();
      context.moveTo(0, bottom);
      for (let x = 0; x <= width; x += 2) {
        const frame = Math.floor(left + x * perPixel);
        const value = frame >= oldest && frame < this.gridEnd && frame >= 0 ? row.values[frame % this.size] : 0;
        context.lineTo(x, bottom - value * (rowHeight - 2));
      }
      context.lineTo(width, bottom);
      context.closePath();
      context.globalAlpha = 0.85;
      context.fill();
      context.globalAlpha = 1;
      context.fillStyle = "rgba(0, 0, 0, 0.6)"; // the name stays legible over the scores
      context.fillRect(2 * ratio, bottom - rowHeight + 1 * ratio, context.measureText(row.label).width + 4 * ratio, 14 * ratio);
      context.fillStyle = "#ccc";
      context.fillText(row.label, 4 * ratio, bottom - rowHeight + 12 * ratio);
    });
    for (const event of this.events.values()) {
      const end = event.state === "end" ? event.offset_frame : Math.max(event.offset_frame, this.gridEnd);
      const x0 = (event.onset_frame - left) / perPixel;
      const x1 = (end - left) / perPixel;
      if (x1 < 0 || x0 > width) continue;
      context.fillStyle = event.colour;
      context.fillRect(x0, height - lane + 2 * ratio, Math.max(x1 - x0, 2), lane - 4 * ratio);
      context.fillStyle = "#000";
      context.fillText(event.label, Math.max(x0, 0) + 3 * ratio, height - 6 * ratio);
    }
    for (const [key, event] of this.events) {
      if (event.state === "end" && (event.offset_frame - left) / perPixel < 0) this.events.delete(key);
    }
  }
}

function streamView(name) {
  let view = streams.get(name);
  if (!view) {
    view = new StreamView(name, 30); // until its first scores say how many seconds the view keeps
    streams.set(name, view);
  }
  return view;
}

function showEvent(m) {
  const key = `${m.stream}/${m.id}/${m.latency}`; // latency is fixed at the start: ids restart with a run
  streamView(m.stream).event(m, key);
  let item = listed.get(key);
  if (!item) {
    item = element("li", { "data-stream": m.stream, "data-label": m.label, "data-colour": m.colour });
    item.style.setProperty("--colour", m.colour);
    listed.set(key, item);
    eventsList.prepend(item);
    while (eventsList.children.length > MAX_EVENTS) {
      const last = eventsList.lastElementChild;
      for (const [k, v] of listed) if (v === last) listed.delete(k);
      last.remove();
    }
  }
  const duration = (m.offset - m.onset).toFixed(1);
  const streamName = streams.size > 1 ? ` (${m.stream})` : "";
  item.textContent = `${clock(m.onset_wall)} ${m.label}${streamName}: peak ${m.peak.toFixed(2)}, ${duration} s`;
  item.className = m.cancelled ? "cancelled" : m.state === "end" ? "ended" : "open";
  if (m.state === "end" && !m.cancelled) setTimeout(loadHistory, 2000); // the history has it by then
}

function take(m) {
  if (m.topic === "scores") streamView(m.stream).scores(m);
  else if (m.topic === "event") showEvent(m);
  else if (m.topic === "status") {
    lastStatus = performance.now();
    streamView(m.stream).showStatus(m);
  } else if (m.topic === "link") relay = m;
}

function connect() {
  source = new EventSource("live");
  source.onopen = () => {
    opened += 1;
    if (opened > 1) {
      for (const view of streams.values()) view.reset(); // the server sends what it holds again
    }
    lastStatus = performance.now();
    setLink("live", opened > 1 ? `live (reconnected ${opened - 1}×)` : "live");
  };
  source.onmessage = (message) => take(JSON.parse(message.data));
  source.onerror = () => {
    setLink("lost", "connection lost, reconnecting…");
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000); // refused: try again ourselves
  };
}

function watchSilence() {
  if (!source || source.readyState !== EventSource.OPEN) return;
  const silent = (performance.now() - lastStatus) / 1000;
  if (relay && !relay.healthy) setLink("silent", relay.text);
  else if (streams.size && silent > SILENT_S) setLink("silent", `no data from the detector for ${Math.round(silent)} s`);
  else if (linkBadge.classList.contains("silent")) setLink("live", "live");
}

function frame(now) {
  for (const view of streams.values()) view.draw(now);
  requestAnimationFrame(frame);
}

// --- history ---

function fillSelect(select, values) {
  const chosen = select.value;
  const fixed = [...select.options].filter((option) => option.value === "" || option.value === "last");
  select.replaceChildren(...fixed);
  for (const value of values) select.append(element("option", { value }, value));
  select.value = [...select.options].some((option) => option.value === chosen) ? chosen : "";
}

async function loadOptions() {
  try {
    const response = await fetch("api/history/options");
    if (!response.ok) return;
    const options = await response.json();
    fillSelect(filters.elements.label, options.labels);
    fillSelect(filters.elements.stream, options.streams);
    fillSelect(filters.elements.run, options.runs);
  } catch (error) {
    // offline: the next load tries again
  }
}

async function loadHistory() {
  const query = new URLSearchParams();
  for (const name of ["label", "stream", "run", "since"]) {
    const value = filters.elements[name].value;
    if (value) query.set(name, value);
  }
  let answer;
  try {
    const response = await fetch(`api/history?${query}`);
    if (!response.ok) {
      historyCount.textContent = `history: ${(await response.text()).trim()}`;
      return;
    }
    answer = await response.json();
  } catch (error) {
    historyCount.textContent = "history: not reachable, trying again";
    return;
  }
  if (!answer.store) {
    historyCount.textContent = "no event history ([store] path is empty)";
    historyBody.replaceChildren();
    return;
  }
  const shown = answer.rows.length < answer.total ? ` (newest ${answer.rows.length} shown)` : "";
  historyCount.textContent = `${answer.total} events${shown}`;
  historyBody.replaceChildren(...answer.rows.map(historyRow));
  loadOptions();
}

function historyRow(row) {
  const tr = element("tr", { "data-label": row.label, "data-stream": row.stream, "data-run": row.run });
  const day = new Date(row.onset_wall * 1000);
  const today = day.toDateString() === new Date().toDateString();
  const date = day.toLocaleDateString([], { month: "2-digit", day: "2-digit" });
  const time = day.toLocaleTimeString([], { hour12: false, hour: "2-digit", minute: "2-digit" });
  tr.append(
    element("td", { title: day.toLocaleString() }, today ? clock(row.onset_wall) : `${date} ${time}`),
    element("td", {}, row.stream),
    element("td", {}, row.label),
    element("td", {}, (row.offset - row.onset).toFixed(1)),
    element("td", {}, row.peak.toFixed(2)),
  );
  const clip = element("td");
  if (row.clip_url) {
    const button = element("button", { type: "button", "data-clip": row.clip_url }, "play");
    button.addEventListener("click", () => {
      const audio = element("audio", { controls: "", src: row.clip_url, preload: "auto" });
      button.replaceWith(audio);
      audio.play().catch(() => {}); // a browser that refuses autoplay still shows the controls
    });
    clip.append(button);
  } else if (row.clip_held) {
    clip.textContent = "held back";
    clip.title = "its audio overlaps an event of a privacy target (sinks.privacy)";
  } else {
    clip.textContent = "–";
  }
  tr.append(clip);
  return tr;
}

filters.addEventListener("change", loadHistory);
connect();
setInterval(watchSilence, 1000);
setInterval(loadHistory, 60000);
loadHistory();
requestAnimationFrame(frame);

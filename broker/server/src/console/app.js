// Corelog's web console. Plain JavaScript, no build step, served from the
// binary. Everything the broker returns (topic and group names, keys,
// values, headers) is user data: it reaches the page only through
// textContent and attribute setters, never as markup.
"use strict";

const state = { readOnly: false, cluster: null, chartTimer: null, charts: null, renders: 0 };

// ------------------------------------------------------------- helpers ---

// el("td", {className: "num"}, "text", child, ...): an element whose text
// children are text nodes.
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function nullText() { return el("span", { className: "null" }, "null"); }

function table(headers, rows, id) {
  return el("table", id ? { id } : {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function cell(v, numeric) {
  if (v === null || v === undefined) return el("td", {}, nullText());
  return el("td", numeric ? { className: "num" } : {}, String(v));
}

function bytesText(n) {
  if (n === null || n === undefined) return null;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function setStatus(text, kind) {
  const s = document.getElementById("status");
  s.textContent = text || "";
  s.className = text ? kind || "" : "";
}

function link(text, hash) { return el("a", { href: hash }, text); }

// A write control: hidden and disabled when the console is read-only.
function write(node) {
  node.classList.add("write");
  if (state.readOnly) {
    // Hidden, and disabled too: a form's controls cannot be used even if
    // a style sheet showed them.
    node.hidden = true;
    for (const c of [node, ...node.querySelectorAll("input, button, select, textarea")]) {
      if ("disabled" in c) c.disabled = true;
    }
  }
  return node;
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) throw new Error((data && data.error) || (r.status + " " + r.statusText));
  return data;
}

// ------------------------------------------------------ record display ---

function decodeBase64(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

function hex(bytes) {
  const out = [];
  for (let i = 0; i < bytes.length; i++) {
    out.push(bytes[i].toString(16).padStart(2, "0"));
    if (i % 16 === 15) out.push("\n"); else if (i < bytes.length - 1) out.push(" ");
  }
  return out.join("").trim();
}

// Shows bytes as the format asks: "auto" is pretty JSON when they parse
// as JSON, else UTF-8 text when they decode as UTF-8, else hex.
function formatBytes(b64, format) {
  if (b64 === null || b64 === undefined) return nullText();
  const bytes = decodeBase64(b64);
  let textValue = null;
  try { textValue = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch (e) { textValue = null; }
  if (format === "hex" || (textValue === null && format !== "text")) {
    return el("pre", { className: "hex" }, hex(bytes));
  }
  if (textValue === null) textValue = new TextDecoder("utf-8").decode(bytes);
  if (format === "json" || format === "auto") {
    const t = textValue.trim();
    if (t.startsWith("{") || t.startsWith("[")) {
      try { return el("pre", { className: "json" }, JSON.stringify(JSON.parse(t), null, 2)); } catch (e) { /* not JSON */ }
    }
  }
  return el("pre", { className: "text" }, textValue);
}

function timeText(ms) {
  if (ms === null || ms === undefined || ms < 0) return "";
  return new Date(ms).toISOString();
}

// ---------------------------------------------------------------- views ---

async function viewTopics(view) {
  const data = await api("GET", "/api/topics");
  const c = state.cluster;
  view.appendChild(el("h1", {}, "Cluster"));
  view.appendChild(el("p", { id: "cluster-health" },
    (c.ready ? "Ready" : "Not ready") + ": " + c.brokers.length + " broker(s), " + c.shards +
    " shard(s) on this one, cluster id " + (c.cluster_id || "unknown") + ", Corelog " + c.version + "."));
  view.appendChild(table(["Broker", "Host", "Port", "Rack", "Controller"],
    c.brokers.map((b) => el("tr", {}, cell(b.id, true), cell(b.host), cell(b.port, true), el("td", {}, b.rack || ""),
      el("td", {}, b.id === c.controller_id ? "yes" : ""))),
    "brokers"));
  view.appendChild(el("h1", {}, "Topics"));
  const form = write(el("form", { id: "create-topic-form" },
    el("label", {}, "Name ", el("input", { id: "new-topic-name", required: true, size: 28 })),
    el("label", {}, "Partitions ", el("input", { id: "new-topic-partitions", type: "number", min: 1, value: 1, size: 4 })),
    el("label", {}, "Replication factor ", el("input", { id: "new-topic-rf", type: "number", min: -1, value: -1, size: 3 })),
    el("label", {}, "Configs ", el("input", { id: "new-topic-configs", placeholder: "retention.ms=60000, cleanup.policy=delete", size: 36 })),
    el("button", { id: "create-topic", type: "submit" }, "Create topic")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const configs = {};
    for (const pair of document.getElementById("new-topic-configs").value.split(",")) {
      const [k, ...v] = pair.split("=");
      if (k.trim()) configs[k.trim()] = v.join("=").trim();
    }
    const name = document.getElementById("new-topic-name").value.trim();
    try {
      await api("POST", "/api/topics", {
        name,
        partitions: Number(document.getElementById("new-topic-partitions").value),
        replication_factor: Number(document.getElementById("new-topic-rf").value),
        configs,
      });
      setStatus("Created topic " + name, "ok");
      render();
    } catch (e) { setStatus(e.message, "error"); }
  });
  view.appendChild(form);
  const rows = data.topics.map((t) => el("tr", { dataset: { topic: t.name } },
    el("td", {}, link(t.name, "#/topic/" + encodeURIComponent(t.name))),
    cell(t.partition_count, true),
    cell(t.replication_factor, true),
    cell(t.records, true),
    cell(bytesText(t.size_bytes), true),
    el("td", {}, t.error || ""),
    el("td", {}, write(el("button", {
      className: "danger delete-topic",
      type: "button",
      onclick: async () => {
        if (!window.confirm("Delete topic " + t.name + "?")) return;
        try {
          await api("DELETE", "/api/topic?name=" + encodeURIComponent(t.name));
          setStatus("Deleted topic " + t.name, "ok");
          render();
        } catch (e) { setStatus(e.message, "error"); }
      },
    }, "Delete")))));
  view.appendChild(table(["Topic", "Partitions", "Replicas", "Records", "Size", "Error", ""], rows, "topics"));
  if (!data.topics.length) view.appendChild(el("p", { className: "muted" }, "No topics yet."));
}

async function viewTopic(view, name) {
  const t = await api("GET", "/api/topic?name=" + encodeURIComponent(name));
  view.appendChild(el("h1", {}, "Topic ", el("span", { id: "topic-name" }, t.name)));
  view.appendChild(el("p", { className: "muted" }, "Topic id " + t.topic_id));
  view.appendChild(el("h2", {}, "Partitions"));
  view.appendChild(table(["Partition", "Leader", "Replicas", "In sync", "Start offset", "High watermark", "Size", ""],
    t.partitions.map((p) => el("tr", {},
      cell(p.partition, true), cell(p.leader, true), cell(p.replicas.join(", ")), cell(p.isr.join(", ")),
      cell(p.log_start_offset, true), cell(p.high_watermark, true), cell(bytesText(p.size_bytes), true),
      el("td", {}, link("Browse messages", "#/messages/" + encodeURIComponent(t.name) + "/" + p.partition)))),
    "partitions"));
  view.appendChild(produceForm(t.name, t.partitions.length));
  view.appendChild(el("h2", {}, "Configs"));
  view.appendChild(table(["Name", "Value", "Source"],
    t.configs.map((c) => el("tr", {}, cell(c.name), c.sensitive ? el("td", {}, "(sensitive)") : cell(c.value), cell(c.source))),
    "configs"));
}

function produceForm(topic, partitions) {
  const select = el("select", { id: "produce-partition" },
    el("option", { value: "" }, "by key"),
    Array.from({ length: partitions }, (_, i) => el("option", { value: String(i) }, String(i))));
  const form = write(el("form", { id: "produce-form" },
    el("h2", {}, "Produce a test message"),
    el("label", {}, "Partition ", select),
    el("label", {}, "Key ", el("input", { id: "produce-key", size: 20 })),
    el("br"),
    el("label", {}, "Value ", el("textarea", { id: "produce-value", rows: 3, cols: 60 })),
    el("label", {}, "Headers (one key=value a line) ", el("textarea", { id: "produce-headers", rows: 3, cols: 30 })),
    el("button", { id: "produce-send", type: "submit" }, "Send")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = document.getElementById("produce-key").value;
    const headers = document.getElementById("produce-headers").value.split("\n")
      .filter((l) => l.trim()).map((l) => { const i = l.indexOf("="); return i < 0 ? [l, ""] : [l.slice(0, i), l.slice(i + 1)]; });
    const p = document.getElementById("produce-partition").value;
    try {
      const r = await api("POST", "/api/messages", {
        topic,
        partition: p === "" ? null : Number(p),
        key: key === "" ? null : key,
        value: document.getElementById("produce-value").value,
        headers,
      });
      setStatus("Produced to partition " + r.partition + " at offset " + r.offset, "ok");
    } catch (e) { setStatus(e.message, "error"); }
  });
  return form;
}

async function viewMessages(view, topic, partition, params) {
  view.appendChild(el("h1", {}, "Messages of ", link(topic, "#/topic/" + encodeURIComponent(topic)), " partition " + partition));
  const from = params.get("from") || "earliest";
  const fromSelect = el("select", { id: "browse-from" },
    ["earliest", "latest", "offset", "timestamp"].map((v) => el("option", { value: v, selected: v === from }, v)));
  const format = params.get("format") || "auto";
  const formatSelect = el("select", { id: "browse-format" },
    ["auto", "text", "json", "hex"].map((v) => el("option", { value: v, selected: v === format }, v)));
  const form = el("form", { id: "browse-form" },
    el("label", {}, "From ", fromSelect),
    el("label", {}, "Offset ", el("input", { id: "browse-offset", type: "number", min: 0, value: params.get("offset") || "", size: 10 })),
    el("label", {}, "Time (ISO or ms) ", el("input", { id: "browse-timestamp", value: params.get("timestamp") || "", size: 24, placeholder: "2026-12-08T00:00:00Z" })),
    el("label", {}, "Limit ", el("input", { id: "browse-limit", type: "number", min: 1, max: 500, value: params.get("limit") || "50", size: 4 })),
    el("label", {}, "Show as ", formatSelect),
    el("button", { id: "browse-go", type: "submit" }, "Browse"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    q.set("from", fromSelect.value);
    if (fromSelect.value === "offset") q.set("offset", document.getElementById("browse-offset").value);
    if (fromSelect.value === "timestamp") q.set("timestamp", document.getElementById("browse-timestamp").value);
    q.set("limit", document.getElementById("browse-limit").value);
    q.set("format", formatSelect.value);
    location.hash = "#/messages/" + encodeURIComponent(topic) + "/" + partition + "?" + q.toString();
  });
  view.appendChild(form);
  const q = new URLSearchParams({ topic, partition: String(partition), limit: params.get("limit") || "50" });
  if (from === "offset" && params.get("offset")) q.set("offset", params.get("offset"));
  else if (from === "timestamp" && params.get("timestamp")) {
    const t = params.get("timestamp");
    const ms = /^\d+$/.test(t) ? Number(t) : Date.parse(t);
    if (Number.isNaN(ms)) throw new Error("not a time: " + t);
    q.set("timestamp", String(ms));
  } else if (from === "latest") q.set("from", "latest");
  const data = await api("GET", "/api/messages?" + q.toString());
  view.appendChild(el("p", { className: "muted", id: "browse-summary" },
    data.records.length + " records; partition offsets " + data.log_start_offset + " to " + data.high_watermark +
    "; next offset " + data.next_offset));
  const rows = data.records.map((r) => el("tr", { dataset: { offset: String(r.offset) } },
    cell(r.offset, true),
    el("td", {}, timeText(r.timestamp), el("br"), el("span", { className: "muted" }, r.timestamp_type)),
    el("td", { className: "key" }, formatBytes(r.key, format)),
    el("td", { className: "value" }, formatBytes(r.value, format)),
    el("td", { className: "headers" }, r.headers.map((h) => el("div", {},
      el("span", { className: "header-key" }, h.key), ": ", formatBytes(h.value, format))))));
  view.appendChild(table(["Offset", "Timestamp", "Key", "Value", "Headers"], rows, "records"));
  if (data.next_offset < data.high_watermark) {
    const more = new URLSearchParams(params);
    more.set("from", "offset");
    more.set("offset", String(data.next_offset));
    view.appendChild(link("Next page", "#/messages/" + encodeURIComponent(topic) + "/" + partition + "?" + more.toString()));
  }
}

async function viewGroups(view) {
  const data = await api("GET", "/api/groups");
  view.appendChild(el("h1", {}, "Consumer groups"));
  view.appendChild(table(["Group", "State", "Protocol type"],
    data.groups.map((g) => el("tr", { dataset: { group: g.group_id } },
      el("td", {}, link(g.group_id, "#/group/" + encodeURIComponent(g.group_id))), cell(g.state), cell(g.protocol_type))),
    "groups"));
  if (!data.groups.length) view.appendChild(el("p", { className: "muted" }, "No groups yet."));
}

async function viewGroup(view, id) {
  const g = await api("GET", "/api/group?id=" + encodeURIComponent(id));
  view.appendChild(el("h1", {}, "Group ", el("span", { id: "group-id" }, g.group_id)));
  view.appendChild(el("p", {}, "State ", el("b", { id: "group-state" }, g.state), "; protocol " + g.protocol_type + " " + g.protocol +
    "; total lag ", el("b", { id: "group-total-lag" }, String(g.total_lag))));
  view.appendChild(el("h2", {}, "Members"));
  view.appendChild(table(["Member", "Client id", "Host", "Assignment"],
    g.members.map((m) => el("tr", {}, cell(m.member_id), cell(m.client_id), cell(m.client_host),
      el("td", {}, m.assignment.map((a) => el("div", {}, a.topic + ": " + a.partitions.join(", ")))))),
    "members"));
  view.appendChild(el("h2", {}, "Offsets and lag"));
  view.appendChild(table(["Topic", "Partition", "Committed", "High watermark", "Lag"],
    g.offsets.map((o) => el("tr", { dataset: { topic: o.topic, partition: String(o.partition) } },
      cell(o.topic), cell(o.partition, true), cell(o.committed_offset, true), cell(o.high_watermark, true),
      el("td", { className: "num lag" }, o.lag === null ? "" : String(o.lag)))),
    "offsets"));
}

// --------------------------------------------------------------- charts ---

// Parses Prometheus text exposition into {name: sum of its samples}.
function sumMetrics(text) {
  const sums = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (Number.isFinite(v)) sums[m[1]] = (sums[m[1]] || 0) + v;
  }
  return sums;
}

// Sums, over the shards, the buckets of histogram `name` whose labels hold
// `match` (e.g. api="Produce"), by upper bound.
function bucketSums(text, name, match) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "_bucket{")) continue;
    const m = /^[^{]+\{(.*)\}\s+(\S+)/.exec(line);
    if (!m || (match && !m[1].includes(match))) continue;
    const le = /le="([^"]+)"/.exec(m[1]);
    if (le) out[le[1]] = (out[le[1]] || 0) + Number(m[2]);
  }
  return out;
}

// The q-quantile of what was observed between two bucket snapshots,
// interpolated within its bucket as Prometheus' histogram_quantile does;
// null when nothing was observed.
function quantileBetween(prev, cur, q) {
  const bounds = Object.keys(cur)
    .map((k) => [k === "+Inf" ? Infinity : Number(k), k])
    .sort((a, b) => a[0] - b[0]);
  const counts = bounds.map(([bound, k]) => [bound, (cur[k] || 0) - ((prev && prev[k]) || 0)]);
  const total = counts.length ? counts[counts.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0, below = 0;
  for (const [bound, count] of counts) {
    if (count >= rank) {
      if (bound === Infinity) return lower;
      return lower + (bound - lower) * ((rank - below) / Math.max(1e-9, count - below));
    }
    lower = bound;
    below = count;
  }
  return lower;
}

const CHARTS = [
  { id: "records", title: "Records produced / s", rate: "corelog_partition_records_in_total" },
  { id: "bytes", title: "Bytes in / s", rate: "corelog_partition_bytes_in_total", unit: "bytes" },
  { id: "bytesout", title: "Bytes out / s", rate: "corelog_partition_bytes_out_total", unit: "bytes" },
  { id: "produce", title: "Produce p99 (ms, each interval)", hist: "corelog_request_duration_seconds", match: 'api="Produce"' },
  { id: "sync", title: "Durable write p99 (ms, each interval)", hist: "corelog_log_sync_duration_seconds" },
  { id: "cpu", title: "Broker CPU (cores)", rate: "process_cpu_seconds_total" },
  { id: "connections", title: "Connections", gauge: "corelog_connections" },
  { id: "inflight", title: "Request bytes in flight", gauge: "corelog_request_bytes_in_flight", unit: "bytes" },
  { id: "latency", title: "Scrape latency (ms, browser to /metrics)", latency: true },
];
const CHART_POINTS = 60;
const CHART_INTERVAL_MS = 2000;

function drawChart(svg, values, unit) {
  const W = 320, H = 120, NS = "http://www.w3.org/2000/svg";
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const max = Math.max(1e-9, ...values);
  const axis = document.createElementNS(NS, "line");
  for (const [k, v] of [["x1", 0], ["y1", H - 1], ["x2", W], ["y2", H - 1]]) axis.setAttribute(k, v);
  axis.setAttribute("class", "axis");
  svg.appendChild(axis);
  const pts = values.map((v, i) => (i * W / (CHART_POINTS - 1)).toFixed(1) + "," + (H - 2 - (v / max) * (H - 14)).toFixed(1));
  const line = document.createElementNS(NS, "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.appendChild(line);
  const label = document.createElementNS(NS, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", 10);
  const last = values.length ? values[values.length - 1] : 0;
  const fmt = (x) => unit === "bytes" ? bytesText(Math.round(x)) : (Math.round(x * 100) / 100).toString();
  label.textContent = "now " + fmt(last) + "   max " + fmt(max);
  svg.appendChild(label);
}

async function viewCharts(view) {
  view.appendChild(el("h1", {}, "Charts"));
  view.appendChild(el("p", { className: "muted" }, "From /metrics every " + CHART_INTERVAL_MS / 1000 + " s, last " + CHART_POINTS + " points, drawn in the browser."));
  const box = el("div", { className: "charts" });
  const svgs = {};
  for (const c of CHARTS) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("width", "320");
    svg.setAttribute("height", "120");
    svg.setAttribute("id", "chart-" + c.id);
    svgs[c.id] = svg;
    box.appendChild(el("div", { className: "chart" }, el("div", { className: "title" }, c.title), svg));
  }
  view.appendChild(box);
  state.charts = { prev: null, series: Object.fromEntries(CHARTS.map((c) => [c.id, []])) };
  const tick = async () => {
    const started = performance.now();
    let text;
    try {
      const r = await fetch("/metrics");
      text = await r.text();
    } catch (e) { setStatus("metrics: " + e.message, "error"); return; }
    const latency = performance.now() - started;
    const now = Date.now();
    const sums = sumMetrics(text);
    const prev = state.charts.prev;
    const hists = {};
    for (const c of CHARTS) {
      if (c.hist) hists[c.id] = bucketSums(text, c.hist, c.match);
    }
    for (const c of CHARTS) {
      let v = null;
      if (c.latency) v = latency;
      else if (c.hist) {
        // An interval with nothing observed draws 0.
        if (prev) v = (quantileBetween(prev.hists[c.id], hists[c.id], 0.99) || 0) * 1000;
      }
      else if (c.gauge) v = sums[c.gauge] || 0;
      else if (prev) v = Math.max(0, ((sums[c.rate] || 0) - (prev.sums[c.rate] || 0)) / ((now - prev.at) / 1000));
      if (v === null) continue;
      const s = state.charts.series[c.id];
      s.push(v);
      if (s.length > CHART_POINTS) s.shift();
      drawChart(svgs[c.id], s, c.unit);
    }
    state.charts.prev = { at: now, sums, hists };
  };
  await tick();
  state.chartTimer = setInterval(tick, CHART_INTERVAL_MS);
}

// --------------------------------------------------------------- router ---

async function loadCluster() {
  const c = await api("GET", "/api/cluster");
  state.cluster = c;
  state.readOnly = c.read_only;
  document.body.classList.toggle("read-only", c.read_only);
  document.getElementById("mode").textContent = c.read_only ? "read-only" : "";
  document.getElementById("cluster-summary").textContent =
    (c.ready ? "ready" : "NOT READY") + " · cluster " + (c.cluster_id || "?") + " · brokers " +
    c.brokers.map((b) => b.id + "@" + b.host + ":" + b.port).join(", ") + " · controller " + c.controller_id +
    " · " + c.shards + " shards · v" + c.version;
}

async function render() {
  if (state.chartTimer) { clearInterval(state.chartTimer); state.chartTimer = null; }
  const view = document.getElementById("view");
  while (view.firstChild) view.removeChild(view.firstChild);
  const hash = location.hash || "#/topics";
  const [path, query] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("current", hash.startsWith(a.getAttribute("href")));
  try {
    await loadCluster();
    if (parts[0] === "topic" && parts.length === 2) await viewTopic(view, parts[1]);
    else if (parts[0] === "messages" && parts.length === 3) await viewMessages(view, parts[1], Number(parts[2]), params);
    else if (parts[0] === "groups") await viewGroups(view);
    else if (parts[0] === "group" && parts.length === 2) await viewGroup(view, parts[1]);
    else if (parts[0] === "charts") await viewCharts(view);
    else await viewTopics(view);
  } catch (e) {
    setStatus(e.message, "error");
  }
  // Tells a test (or a curious reader) that a view has finished drawing.
  state.renders += 1;
  document.body.dataset.renders = String(state.renders);
}

window.addEventListener("hashchange", () => { setStatus(""); render(); });
render();

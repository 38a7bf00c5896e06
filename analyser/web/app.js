// The web page of `sorf serve`: the observation window, the zone picture, the deltas and their evidence.
// Vanilla JS, no build step. Everything is built with createElement/textContent (data never goes through
// innerHTML), styled with classes only (the server's CSP forbids inline styles), and read from /api/v1.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "sorf.token";
const SEVERITIES = ["critical", "high", "medium", "low", "info"];
const PAGE_SIZE = 100;          // deltas per page of the table
const EVIDENCE_PAGE_SIZE = 50;  // evidence rows per page of a delta
const FILTERS = ["severity", "category", "zone", "protocol"];
const POLL_MS = 30000;          // how often the page asks whether the database changed

const state = {
  health: null,        // GET /health, once it answered
  zones: [],           // names, for the zone filter
  protocols: [],       // protocols of the deltas, for the protocol filter
  picture: null,       // the inline <svg>, fetched once
  overview: null,      // the overview's DOM, built once and kept (so focus survives a filter change)
  overviewHash: "#/",  // where "All deltas" goes back to, filters included
  renderSeq: 0,        // a newer route makes an older, slower one drop its result
  shown: null,         // the path shown: a new one scrolls to the top and moves the focus there
};

// --- DOM ------------------------------------------------------------------------------------------------------------

// el("td", {className: "num", text: "3"}, child, ...): properties are assigned, never parsed as markup.
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "attrs") for (const [a, v] of Object.entries(value)) node.setAttribute(a, v);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function clear(node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function statusLine(text, kind = "") {
  return el("p", {className: `status ${kind}`.trim(), text, attrs: {role: kind === "error" ? "alert" : "status"}});
}

// --- formatting -----------------------------------------------------------------------------------------------------

// "2026-01-05T08:00:30.000700Z" -> "2026-01-05 08:00:30.000700" (UTC; digits: how many of the fraction to keep).
function fmtTime(iso, digits = 6) {
  if (!iso) return "-";
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(iso);
  if (!m) return iso;
  const fraction = digits && m[3] ? `.${m[3].slice(0, digits)}` : "";
  return `${m[1]} ${m[2]}${fraction}`;
}

function timeEl(iso, suffix = " UTC", digits = 6) {
  if (!iso) return el("span", {className: "muted", text: "-"});
  return el("time", {dateTime: iso, title: iso, text: fmtTime(iso, digits) + suffix});
}

function fmtDuration(firstIso, lastIso) {
  const seconds = Math.round((new Date(lastIso) - new Date(firstIso)) / 1000);
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  const parts = [[Math.floor(seconds / 86400), "d"], [Math.floor(seconds / 3600) % 24, "h"],
    [Math.floor(seconds / 60) % 60, "m"], [seconds % 60, "s"]];
  while (parts.length > 1 && parts[0][0] === 0) parts.shift();
  return parts.map(([n, unit]) => `${n}${unit}`).join(" ");
}

function fmtCount(n) {
  return n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US");
}

function plural(n, word, many = `${word}s`) {
  return `${fmtCount(n)} ${n === 1 ? word : many}`;
}

function words(name) {
  return String(name).replaceAll("_", " ");
}

function basename(path) {
  return String(path).split(/[\\/]/).pop();
}

function endpoint(ip, port) {
  return port === null || port === undefined ? ip : (ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`);
}

function where(delta) {
  if (delta.host) {
    const peers = delta.peer_zones.length ? ` with ${delta.peer_zones.join(", ")}` : "";
    return `${delta.host} (no zone)${peers}`;
  }
  return `${delta.from_zone ?? "?"} \u2192 ${delta.to_zone ?? "?"}`;
}

function severityBadge(severity) {
  return el("span", {className: `badge sev-${severity}`, text: severity});
}

// --- the API --------------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// The one way to the server: adds the token, and turns any failure into an ApiError whose message is words.
async function apiFetch(path) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let response;
  try {
    response = await fetch(API + path, {headers, cache: "no-store"});
  } catch {
    throw new ApiError(0, "The sorf server cannot be reached. Is `sorf serve` still running?");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`.trim();
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch {
      // not a JSON error body: keep the status line
    }
    throw new ApiError(response.status, message);
  }
  return response;
}

async function getJSON(path) {
  return (await apiFetch(path)).json();
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.append(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// Every item of a paginated list ({total, items}), a page at a time.
async function getAll(path) {
  const items = [];
  for (;;) {
    const page = await getJSON(path + query({limit: 500, offset: items.length}));
    items.push(...page.items);
    if (!page.items.length || items.length >= page.total) return items;
  }
}

// A failure as a paragraph; a 401 as the token form instead.
function failure(error, what) {
  if (error instanceof ApiError && error.status === 401) return tokenForm();
  if (error instanceof ApiError && error.status === 404) return statusLine(`${what} was not found (${error.message}).`, "error");
  if (error instanceof ApiError && error.status === 0) return statusLine(error.message, "error");
  const status = error instanceof ApiError ? ` (HTTP ${error.status})` : "";
  return statusLine(`${what} failed${status}: ${error.message}`, "error");
}

// --- the token ------------------------------------------------------------------------------------------------------

function tokenForm() {
  const rejected = Boolean(token());
  const input = el("input", {type: "password", id: "token", name: "token", autocomplete: "current-password",
    required: true, spellcheck: false});
  const form = el("form", {className: "card token-form", attrs: {"aria-labelledby": "token-title"}},
    el("h2", {id: "token-title", text: "Access token needed"}),
    el("p", {text: "This sorf server was started with an access token. Enter it to see the analysis; "
      + "it is kept in this browser tab only (session storage) and sent with every request."}),
    rejected ? el("p", {className: "status error", attrs: {role: "alert"},
      text: "The server did not accept the token given. Check it and try again."}) : null,
    el("div", {className: "token-row"},
      el("label", {htmlFor: "token", text: "Token"}), input,
      el("button", {type: "submit", className: "primary", text: "Continue"})));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    start();
  });
  queueMicrotask(() => input.focus());
  return form;
}

// --- the masthead: site, window, statement --------------------------------------------------------------------------

function windowFacts(w) {
  const facts = [
    ["Captures", fmtCount(w.captures)],
    ["Window", null],
    ["Sensors", w.sensors.length ? w.sensors.join(", ") : "none named"],
    ["Flows", fmtCount(w.flows)],
    ["Hosts", fmtCount(w.hosts)],
  ];
  const span = w.first_seen
    ? el("span", {}, timeEl(w.first_seen, "", 0), " to ", timeEl(w.last_seen, " UTC", 0), " ",
      el("span", {className: "muted", text: `(${fmtDuration(w.first_seen, w.last_seen)})`}))
    : el("span", {className: "muted", text: "no packet captured"});
  return facts.map(([term, value]) => el("div", {className: "fact"},
    el("dt", {text: term}), el("dd", {}, value === null ? span : value)));
}

function renderMasthead(health) {
  const site = health.site || "Unnamed site";
  document.getElementById("site").textContent = site;
  document.title = `sorf: ${site}`;
  clear(document.getElementById("window"), ...windowFacts(health.window));
  document.getElementById("statement").textContent = health.statement;
  clear(document.getElementById("footer"),
    el("span", {}, "Database ", el("code", {text: health.database})),
    el("span", {}, "Zone file ", el("code", {text: health.zone_file})),
    health.last_capture_at ? el("span", {}, "Last ingest ", timeEl(health.last_capture_at, " UTC", 0)) : null,
    el("span", {}, "Data as of ", timeEl(health.data_as_of, " UTC", 0)),
    el("a", {href: "/docs", text: "API documentation"}));
  renderNotices(health, false);
}

// What the server could not do (a zone file that did not reload, ...), and whether newer data is there.
function renderNotices(health, newer) {
  const notices = [];
  if (health.status === "waiting") notices.push(el("p", {className: "notice", text: "Waiting for the database: nothing to analyse yet."}));
  for (const problem of health.problems || []) notices.push(el("p", {className: "notice", text: problem}));
  if (newer) {
    const reload = el("button", {type: "button", className: "small", text: "Show the new data"});
    reload.addEventListener("click", start);
    notices.push(el("p", {className: "notice fresh"},
      el("span", {}, "The database changed: data as of ", timeEl(health.data_as_of, " UTC", 0), ". "), reload));
  }
  clear(document.getElementById("notices"), ...notices);
}

async function checkForNewData() {
  if (!state.health || document.hidden) return;
  try {
    const health = await getJSON("/health");
    renderNotices(health, health.data_as_of !== state.health.data_as_of);
  } catch {
    // the next navigation says what is wrong
  }
}

// --- the zone picture -----------------------------------------------------------------------------------------------

async function loadPicture() {
  const text = await (await apiFetch("/picture.svg")).text();
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  if (doc.querySelector("parsererror") || doc.documentElement.localName !== "svg") {
    throw new Error("the server sent a zone picture that is not valid SVG");
  }
  for (const node of doc.querySelectorAll("script, foreignObject")) node.remove();
  const svg = document.importNode(doc.documentElement, true);
  svg.classList.add("zone-svg");
  svg.setAttribute("role", "group");  // not "img": its crossings and zones are buttons
  if (!svg.hasAttribute("aria-label")) svg.setAttribute("aria-label", "Zones and the crossings observed between them");
  makeInteractive(svg);
  return svg;
}

function edgeName(node) {
  const ends = `${node.dataset.from || `${node.dataset.hosts || "a host"} (no zone)`} \u2192 ${node.dataset.to || "?"}`;
  return node.dataset.conduit ? `conduit ${node.dataset.conduit} (${ends})` : ends;
}

function crossingLabel(node, ids) {
  return `${edgeName(node)}: ${plural(ids.length, "delta")}. Show ${ids.length === 1 ? "it" : "them"}.`;
}

// The label drawn for an edge names the same kind of edge, its ends and its conduit.
function edgeKey(node) {
  const kind = node.classList.contains("conduit") ? "conduit" : "crossing";
  return [kind, node.dataset.from || "", node.dataset.to || "", node.dataset.conduit || ""].join("|");
}

function activate(node, label, action, focusable = true) {
  node.classList.add("clickable");
  if (focusable) {
    node.setAttribute("tabindex", "0");
    node.setAttribute("role", "button");
    node.setAttribute("aria-label", label);
  }
  if (!node.querySelector(":scope > title")) {
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = label;
    node.prepend(title);
  }
  node.addEventListener("click", (event) => {
    event.stopPropagation();
    action();
  });
  node.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      action();
    }
  });
}

function showDeltas(ids) {
  location.hash = ids.length === 1 ? `#/delta/${encodeURIComponent(ids[0])}` : `#/${query({ids: ids.join(",")})}`;
}

// An edge with data-delta-ids (a crossing, an unused conduit) opens its delta, or filters the table to its deltas,
// and so does its label (a click target only: the edge is the keyboard's); a zone filters the table to that zone.
function makeInteractive(svg) {
  const edges = new Map();
  for (const node of svg.querySelectorAll("[data-delta-ids]:not(.edge-label)")) {
    const ids = node.dataset.deltaIds.split(/\s+/).filter(Boolean);
    if (!ids.length) continue;
    activate(node, crossingLabel(node, ids), () => showDeltas(ids));
    const key = edgeKey(node);
    edges.set(key, edges.has(key) ? null : ids);  // two edges with one key: their labels stay plain
  }
  for (const label of svg.querySelectorAll(".edge-label")) {
    const ids = edges.get(edgeKey(label));
    if (ids) activate(label, crossingLabel(label, ids), () => showDeltas(ids), false);
  }
  for (const node of svg.querySelectorAll(".zone[data-zone]")) {
    const zone = node.dataset.zone;
    activate(node, `Zone ${zone}: show the deltas that involve it.`, () => { location.hash = `#/${query({zone})}`; });
  }
}

function highlightPicture(params) {
  if (!state.picture) return;
  const ids = new Set((params.get("ids") || "").split(",").filter(Boolean));
  for (const node of state.picture.querySelectorAll("[data-delta-ids]")) {
    const mine = node.dataset.deltaIds.split(/\s+/).filter(Boolean);
    node.classList.toggle("selected", ids.size > 0 && mine.some((id) => ids.has(id)));
  }
  for (const node of state.picture.querySelectorAll(".zone[data-zone]")) {
    node.classList.toggle("selected", node.dataset.zone === params.get("zone"));
  }
}

// --- the overview: picture and delta table --------------------------------------------------------------------------

function filterSelect(name, label, options) {
  const select = el("select", {id: `filter-${name}`, name},
    el("option", {value: "", text: "any"}),
    ...options.map(([value, text]) => el("option", {value, text})));
  select.addEventListener("change", () => setFilter(name, select.value));
  return el("div", {className: "filter"}, el("label", {htmlFor: select.id, text: label}), select);
}

function setFilter(name, value) {
  const params = currentRoute().params;
  params.delete("ids");
  params.delete("offset");
  if (value) params.set(name, value);
  else params.delete(name);
  location.hash = `#/${query(Object.fromEntries(params))}`;
}

function severityChips(bySeverity) {
  return el("div", {className: "chips", attrs: {role: "group", "aria-label": "Deltas by severity"}},
    ...SEVERITIES.map((sev) => {
      const count = bySeverity[sev] ?? 0;
      const chip = el("button", {type: "button", className: `chip sev-${sev}`, disabled: count === 0,
        title: `Show the ${sev} deltas only`},
      el("span", {className: "chip-count", text: fmtCount(count)}), ` ${sev}`);
      chip.addEventListener("click", () => setFilter("severity", sev));
      return chip;
    }));
}

function buildOverview() {
  const summary = state.health.summary;
  const categories = Object.keys(summary.by_category);
  const filters = el("form", {className: "filters", attrs: {"aria-label": "Filter the deltas"}},
    filterSelect("severity", "Severity", SEVERITIES.map((s) => [s, s])),
    filterSelect("category", "Category", categories.map((c) => [c, words(c)])),
    filterSelect("zone", "Zone", state.zones.map((z) => [z, z])),
    filterSelect("protocol", "Protocol", state.protocols.map((p) => [p, p])),
    el("button", {type: "reset", className: "secondary", text: "Clear filters"}));
  filters.addEventListener("submit", (event) => event.preventDefault());
  filters.addEventListener("reset", (event) => {
    event.preventDefault();
    location.hash = "#/";
  });
  const view = {
    root: null,
    picture: el("div", {className: "picture"}, statusLine("Loading the zone picture\u2026")),
    filters,
    selection: el("div", {className: "selection", hidden: true}),
    count: el("p", {className: "count", id: "delta-count", attrs: {"aria-live": "polite"}}),
    table: el("div", {className: "table-wrap"}),
    pager: el("nav", {className: "pager", attrs: {"aria-label": "Pages of deltas"}}),
  };
  view.root = el("div", {className: "overview"},
    el("section", {className: "card picture-card", attrs: {"aria-labelledby": "picture-title"}},
      el("div", {className: "card-head"},
        el("h2", {id: "picture-title", text: "Zones and observed crossings"}),
        el("p", {className: "hint", text: "Click a coloured crossing for its deltas, or a zone to filter by it."})),
      view.picture),
    el("section", {className: "card", attrs: {"aria-labelledby": "deltas-title"}},
      el("div", {className: "card-head"},
        el("h2", {id: "deltas-title", text: "Deltas"}),
        severityChips(summary.by_severity)),
      view.filters, view.selection, view.count, view.table, view.pager));
  return view;
}

async function showPicture(view) {
  try {
    state.picture = state.picture || await loadPicture();
    clear(view.picture, state.picture);
  } catch (error) {
    clear(view.picture, failure(error, "Loading the zone picture"));
  }
}

function deltaRow(delta) {
  const link = el("a", {href: `#/delta/${encodeURIComponent(delta.id)}`, text: delta.id, className: "mono"});
  const row = el("tr", {className: `sev-row-${delta.severity}`, dataset: {id: delta.id}},
    el("td", {}, severityBadge(delta.severity)),
    el("td", {text: words(delta.category)}),
    el("td", {text: where(delta)}),
    el("td", {text: delta.protocol ?? (delta.protocols.length ? delta.protocols.join(", ") : "-")}),
    el("td", {text: delta.access.length ? delta.access.join(", ") : "-"}),
    el("td", {className: "num", text: fmtCount(delta.flows)}),
    el("td", {className: "message"}, el("div", {className: "clamp", title: delta.message, text: delta.message})),
    el("td", {}, link));
  row.addEventListener("click", (event) => {
    if (event.target.closest("a")) return;
    location.hash = link.getAttribute("href");
  });
  return row;
}

function deltaTable(items) {
  const head = ["Severity", "Category", "Where", "Protocol", "Access", "Flows", "Message", "Id"];
  return el("table", {className: "data deltas"},
    el("caption", {className: "visually-hidden", text: "Deltas, worst first. Select a row to open its evidence."}),
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {scope: "col", text: h,
      className: h === "Flows" ? "num" : ""})))),
    el("tbody", {}, ...items.map(deltaRow)));
}

function pager(total, offset, limit, onPage) {
  if (total <= limit) return [];
  const last = Math.min(offset + limit, total);
  const prev = el("button", {type: "button", className: "secondary", text: "\u2190 Previous", disabled: offset === 0});
  const next = el("button", {type: "button", className: "secondary", text: "Next \u2192", disabled: last >= total});
  prev.addEventListener("click", () => onPage(Math.max(0, offset - limit)));
  next.addEventListener("click", () => onPage(offset + limit));
  return [prev, el("span", {text: `${fmtCount(offset + 1)}\u2013${fmtCount(last)} of ${fmtCount(total)}`}), next];
}

// The deltas of a crossing, by id (the API keeps them in severity order).
function deltasByIds(ids) {
  const search = new URLSearchParams(ids.map((id) => ["id", id]));
  return getJSON(`/deltas?${search}&limit=${ids.length}`);
}

function showSelection(view, ids) {
  view.selection.hidden = ids.length === 0;
  if (!ids.length) return;
  const all = el("button", {type: "button", className: "secondary", text: "Show all deltas"});
  all.addEventListener("click", () => { location.hash = "#/"; });
  clear(view.selection, el("span", {text: `Showing the ${plural(ids.length, "delta")} of the crossing chosen in the picture.`}), all);
}

async function showOverview(params, seq) {
  if (!state.overview) {
    state.overview = buildOverview();
    showPicture(state.overview);
  }
  const view = state.overview;
  state.overviewHash = location.hash || "#/";
  clear(document.getElementById("main"), view.root);
  for (const name of FILTERS) view.filters.elements[name].value = params.get(name) || "";
  highlightPicture(params);
  const ids = (params.get("ids") || "").split(",").filter(Boolean);
  showSelection(view, ids);
  const offset = Number(params.get("offset")) || 0;
  view.table.setAttribute("aria-busy", "true");
  try {
    const page = ids.length
      ? await deltasByIds(ids)
      : await getJSON(`/deltas${query({...Object.fromEntries(FILTERS.map((f) => [f, params.get(f)])),
        limit: PAGE_SIZE, offset})}`);
    if (seq !== state.renderSeq) return;
    const all = state.health.summary.deltas;
    view.count.textContent = `${fmtCount(page.total)} of ${plural(all, "delta")}`;
    clear(view.table, page.items.length ? deltaTable(page.items)
      : statusLine(all ? "No delta matches these filters." : "No delta: the traffic in this window matches the declaration."));
    clear(view.pager, ...pager(page.total, page.offset, page.limit, (o) => setFilter("offset", o ? String(o) : "")));
  } catch (error) {
    if (seq !== state.renderSeq) return;
    view.count.textContent = "";
    clear(view.table, failure(error, "Loading the deltas"));
    clear(view.pager);
  } finally {
    view.table.removeAttribute("aria-busy");
  }
}

// --- a delta's page -------------------------------------------------------------------------------------------------

function facts(pairs) {
  return el("dl", {className: "facts"}, ...pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([term, value]) => el("div", {className: "fact"}, el("dt", {text: term}),
      el("dd", {}, value instanceof Node ? value : String(value)))));
}

function list(values) {
  return values && values.length ? values.join(", ") : null;
}

function copyButton(code) {
  const button = el("button", {type: "button", className: "secondary small", text: "Copy"});
  const note = el("span", {className: "copy-note", attrs: {"aria-live": "polite"}});
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(code.textContent);
      note.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(code);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      note.textContent = "Selected: press Ctrl+C to copy";
    }
    setTimeout(() => { note.textContent = ""; }, 4000);
  });
  return [button, note];
}

function evidenceCard(title, e) {
  const filter = el("code", {className: "filter-code", text: `frame.number == ${e.frame}`});
  return el("div", {className: "evidence"},
    el("h3", {text: title}),
    facts([
      ["Capture", el("code", {className: "path", text: e.path, title: `capture ${e.capture_id}`})],
      ["Frame", el("span", {className: "mono frame", text: String(e.frame)})],
      ["Time", timeEl(e.ts)],
    ]),
    el("div", {className: "filter-box"},
      el("span", {className: "filter-label", text: "Wireshark display filter"}),
      el("div", {className: "code-row"}, filter, ...copyButton(filter))));
}

function smallTable(caption, head, rows, numeric = []) {
  return el("table", {className: "data compact"},
    el("caption", {text: caption}),
    el("thead", {}, el("tr", {}, ...head.map((h, i) => el("th", {scope: "col", text: h,
      className: numeric.includes(i) ? "num" : ""})))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c, i) => el("td", {
      className: numeric.includes(i) ? "num" : "", text: c}))))));
}

function countTable(caption, head, counts) {
  const rows = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return rows.length ? smallTable(caption, head, rows.map(([k, n]) => [k, fmtCount(n)]), [1]) : null;
}

function hostPairs(delta) {
  if (!delta.host_pairs.length) return null;
  const table = smallTable("Host pairs", ["Initiator", "Responder", "Flows"],
    delta.host_pairs.map((p) => [p.initiator, p.responder, fmtCount(p.flows)]), [2]);
  const more = delta.host_pairs_total > delta.host_pairs.length
    ? el("p", {className: "muted", text: `The ${delta.host_pairs.length} busiest of ${fmtCount(delta.host_pairs_total)} host pairs.`})
    : null;
  return el("div", {}, table, more);
}

// Both directions: a flow row has `packets`, or the table's own packets_orig and packets_resp.
function flowPackets(row) {
  if (row.packets !== undefined) return row.packets;
  return row.packets_orig === undefined ? null : row.packets_orig + row.packets_resp;
}

const EVIDENCE_COLUMNS = {
  operations: [
    ["Frame", (r) => r.frame, true], ["Time (UTC)", (r) => fmtTime(r.ts)], ["Protocol", (r) => r.protocol],
    ["Direction", (r) => r.direction], ["Function", (r) => r.function_name], ["Target", (r) => r.target],
    ["Access", (r) => r.access_class],
    ["Source", (r) => r.src_ip], ["Destination", (r) => r.dst_ip], ["Capture", (r) => basename(r.path)],
  ],
  flows: [
    ["First frame", (r) => r.first_frame, true], ["Last frame", (r) => r.last_frame, true],
    ["First packet (UTC)", (r) => fmtTime(r.first_ts)], ["Source", (r) => endpoint(r.src_ip, r.src_port)],
    ["Destination", (r) => endpoint(r.dst_ip, r.dst_port)], ["Protocol", (r) => r.app_protocol],
    ["Packets", (r) => fmtCount(flowPackets(r)), true], ["Capture", (r) => basename(r.path)],
  ],
};

function evidenceRows(evidence) {
  const columns = EVIDENCE_COLUMNS[evidence.kind];
  return el("table", {className: "data compact evidence-rows"},
    el("caption", {className: "visually-hidden", text: `Evidence ${evidence.kind}`}),
    el("thead", {}, el("tr", {}, ...columns.map(([h, , num]) => el("th", {scope: "col", text: h, className: num ? "num" : ""})))),
    el("tbody", {}, ...evidence.items.map((row) => el("tr", {}, ...columns.map(([h, get, num]) => el("td", {
      className: num ? "num mono" : "", text: String(get(row) ?? "-"), title: h === "Capture" ? row.path : ""}))))));
}

function evidenceSection(id, first) {
  const body = el("div", {});
  const section = el("section", {className: "card", attrs: {"aria-labelledby": "rows-title"}},
    el("h2", {id: "rows-title", text: "Evidence frames"}), body);
  const render = (answer) => {
    const ev = answer.evidence;
    if (ev.kind === "none" || !ev.items.length) {
      clear(body, statusLine(ev.total ? "No row on this page." : "No frame: nothing matching was seen in this window."));
      return;
    }
    const intro = ev.kind === "operations"
      ? `The ${plural(ev.total, "request")} behind this delta, one per frame.`
      : `The ${plural(ev.total, "flow")} behind this delta, with their first and last frames.`;
    clear(body, el("p", {className: "muted", text: intro}), el("div", {className: "table-wrap"}, evidenceRows(ev)),
      el("nav", {className: "pager", attrs: {"aria-label": "Pages of evidence"}},
        ...pager(ev.total, ev.offset, ev.limit, (offset) => load(offset))));
  };
  const load = async (offset) => {
    body.setAttribute("aria-busy", "true");
    try {
      render(await getJSON(`/deltas/${encodeURIComponent(id)}${query({limit: EVIDENCE_PAGE_SIZE, offset})}`));
    } catch (error) {
      clear(body, failure(error, "Loading the evidence rows"));
    } finally {
      body.removeAttribute("aria-busy");
    }
  };
  render(first);
  return section;
}

// The pcap: a plain link when no token is needed; otherwise fetched with the token and handed over as a Blob URL.
function pcapLink(href, id) {
  const note = el("span", {className: "download-note", attrs: {"aria-live": "polite"}});
  const link = el("a", {href, className: "button primary", download: `sorf-evidence-${id}.pcapng`,
    text: "Download evidence (pcapng)"});
  link.addEventListener("click", async (event) => {
    if (!token()) return;
    event.preventDefault();
    note.textContent = "Preparing the capture\u2026";
    try {
      const response = await apiFetch(href.replace(API, ""));
      const name = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
      const url = URL.createObjectURL(await response.blob());
      const temporary = el("a", {href: url, download: name ? name[1] : link.download, hidden: true});
      document.body.append(temporary);
      temporary.click();
      temporary.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      note.textContent = "";
    } catch (error) {
      note.textContent = error.status === 401 ? "The token was not accepted." : `Download failed: ${error.message}`;
    }
  });
  return el("div", {className: "download"}, link, note);
}

function deltaPage(answer) {
  const d = answer.delta;
  const ev = d.evidence;
  const back = el("a", {href: state.overviewHash, className: "back", text: "\u2190 All deltas"});
  const head = el("section", {className: `card delta-head sev-edge-${d.severity}`, attrs: {"aria-labelledby": "delta-title"}},
    el("div", {className: "delta-meta"}, severityBadge(d.severity),
      el("span", {className: "category", text: words(d.category)}),
      el("span", {className: "mono muted", text: `id ${d.id}`})),
    el("h2", {id: "delta-title", className: "delta-message", text: d.message}),
    facts([
      ["From zone", d.from_zone], ["To zone", d.to_zone], ["Host", d.host],
      ["Peer zones", list(d.peer_zones)], ["Conduits", list(d.conduits) ?? "none declared"],
      ["Protocol", d.protocol ?? list(d.protocols)], ["Ports", list(d.ports)], ["Access", list(d.access)],
      ["Flows", fmtCount(d.flows)], ["Packets", d.packets === null ? null : fmtCount(d.packets)],
      ["Bytes", d.bytes === null ? null : fmtCount(d.bytes)],
      ["First seen", d.first_seen ? timeEl(d.first_seen) : null], ["Last seen", d.last_seen ? timeEl(d.last_seen) : null],
    ]));
  const evidence = el("section", {className: "card", attrs: {"aria-labelledby": "evidence-title"}},
    el("h2", {id: "evidence-title", text: "Evidence"}),
    ev ? el("div", {className: "evidence-pair"}, ev.first ? evidenceCard("First", ev.first) : null,
      ev.last ? evidenceCard("Last", ev.last) : null)
      : statusLine("No frame: nothing was seen for this delta in the observation window."),
    ev && answer.pcap ? pcapLink(answer.pcap, d.id) : null);
  const details = [hostPairs(d), countTable("Functions", ["Function", "Count"], d.functions),
    countTable("Requests by access class", ["Access class", "Requests"], d.operations)].filter(Boolean);
  return [back, head, evidence,
    details.length ? el("section", {className: "card", attrs: {"aria-label": "Traffic"}},
      el("div", {className: "detail-grid"}, ...details)) : null,
    evidenceSection(d.id, answer)];
}

async function showDelta(id, seq) {
  const main = clear(document.getElementById("main"), statusLine(`Loading delta ${id}\u2026`));
  try {
    const answer = await getJSON(`/deltas/${encodeURIComponent(id)}${query({limit: EVIDENCE_PAGE_SIZE, offset: 0})}`);
    if (seq !== state.renderSeq) return;
    document.title = `sorf: ${words(answer.delta.category)} ${answer.delta.id}`;
    clear(main, el("div", {className: "delta-page"}, ...deltaPage(answer).filter(Boolean)));
  } catch (error) {
    if (seq !== state.renderSeq) return;
    const back = el("a", {href: state.overviewHash, className: "back", text: "\u2190 All deltas"});
    clear(main, back, failure(error, `Delta ${id}`));
  }
}

// --- routing and start ----------------------------------------------------------------------------------------------

function currentRoute() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = hash.split("?");
  return {path, params: new URLSearchParams(search)};
}

function route() {
  if (!state.health) return;
  const seq = ++state.renderSeq;
  const {path, params} = currentRoute();
  const match = /^\/delta\/([^/]+)$/.exec(path);
  if (match) {
    showDelta(decodeURIComponent(match[1]), seq);
  } else {
    document.title = `sorf: ${state.health.site || "Unnamed site"}`;
    showOverview(params, seq);
  }
  if (state.shown !== null && state.shown !== path) {  // a filter change keeps the place and the focus
    window.scrollTo(0, 0);
    document.getElementById("main").focus({preventScroll: true});
  }
  state.shown = path;
}

// The site, the window and the filter choices; then the page the hash names.
async function start() {
  const main = clear(document.getElementById("main"), statusLine("Loading the observation window\u2026"));
  try {
    const [health, zones, deltas] = await Promise.all([getJSON("/health"), getJSON("/zones"), getAll("/deltas")]);
    state.health = health;
    state.zones = zones.items.map((z) => z.name);
    state.protocols = [...new Set(deltas.flatMap((d) => [d.protocol, ...d.protocols]).filter(Boolean))].sort();
    state.overview = null;
    state.picture = null;
    renderMasthead(health);
    route();
  } catch (error) {
    state.health = null;
    document.getElementById("site").textContent = error.status === 401 ? "Sign in to sorf" : "sorf";
    clear(main, failure(error, "Loading the analysis"));
  }
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  start();
  setInterval(checkForNewData, POLL_MS);
});

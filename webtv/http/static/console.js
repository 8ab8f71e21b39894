// The control room: log in with the API token, then watch and steer the channel through the
// control room API (README, "Control room API"). Untrusted text (prompts, log lines) only ever
// goes into textContent.
import { startPlayer, followPicture } from "/static/onair.js";

const TOKEN_KEY = "webtv-token";
const LOG_LINES = 400;
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem(TOKEN_KEY);
let status = null;
let programme = null;
let selected = null;  // the clip in the preview
let libraryOffset = 0;
let started = false;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function clock(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

class ApiError extends Error {}

// One call to the API with the bearer token; the JSON body, or ApiError with the server's words.
async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: "Bearer " + token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, cache: "no-store",
                                       body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = JSON.parse(text); } catch (err) { /* a plain-text error */ }
  if (response.status === 401) { logout("the token was refused"); throw new ApiError("token refused"); }
  if (!response.ok) throw new ApiError((data && data.error) || text.trim() || response.statusText);
  return data;
}

// -- log in --------------------------------------------------------------------------------

async function checkToken(candidate) {
  const response = await fetch("api/token", { headers: { Authorization: "Bearer " + candidate }, cache: "no-store" });
  if (response.ok) return null;
  if (response.status === 401) return "wrong token";
  return (await response.text()).trim() || response.statusText;
}

function logout(why = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = why;
  if (started) location.reload();  // drop the player and the event stream with the token
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const candidate = $("token").value.trim();
  $("login-error").textContent = "";
  const problem = await checkToken(candidate).catch((err) => "cannot reach the daemon: " + err.message);
  if (problem) { $("login-error").textContent = problem; return; }
  token = candidate;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  enter();
});
$("logout").addEventListener("click", () => logout());

function enter() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  if (started) return;
  started = true;
  const video = $("video");
  const player = startPlayer(video, (text) => { $("player-state").textContent = text; });
  followPicture(player, video, (entry) => {
    $("caption").textContent = entry ? describe(entry) : "";
    $("caption").dataset.clip = entry && entry.clip_id != null ? entry.clip_id : "";
  });
  refreshStatus();
  refreshProgramme();
  loadLibrary(true);
  setInterval(refreshProgramme, 5000);
  setInterval(refreshStatus, 5000);
  followEvents();
}

function describe(entry) {
  if (entry.clip_id == null) return "filler";
  return `#${entry.clip_id} ${entry.prompt || ""}`;
}

// -- on air --------------------------------------------------------------------------------

async function refreshProgramme() {
  try {
    programme = await api("api/programme");
  } catch (err) {
    return;
  }
  const now = programme.now;
  $("now").textContent = now ? `${describe(now)} (${now.theme || "no theme"}, since ${clock(now.start)})` : "nothing";
  $("now").dataset.clip = now && now.clip_id != null ? now.clip_id : "";
  $("now").dataset.theme = now && now.theme ? now.theme : "";
  drawTimeline(programme);
}

function drawTimeline(programme) {
  const from = Date.now() / 1000;
  const until = from + 3600;
  const entries = [programme.now, ...(programme.next || [])].filter((e) => e && e.end > from && e.start < until);
  const timeline = $("timeline");
  const list = $("next");
  timeline.replaceChildren();
  list.replaceChildren();
  for (const entry of entries) {
    const seconds = Math.min(entry.end, until) - Math.max(entry.start, from);
    const kind = entry.clip_id == null ? "filler" : entry.projected ? "projected" : "";
    timeline.append(el("div", { class: kind, style: `flex: ${Math.max(seconds, 0)} 0 0`,
                                title: `${clock(entry.start)} ${describe(entry)}` }, entry.theme || ""));
  }
  for (const entry of (programme.next || []).slice(0, 12)) {
    list.append(el("li", {}, `${clock(entry.start)} ${describe(entry)}`,
                   entry.projected ? el("span", { class: "dim" }, " (projected)") : null));
  }
}

async function act(resultId, what, path, options) {
  $(resultId).textContent = what + "…";
  try {
    const result = await api(path, options);
    $(resultId).textContent = what + ": done";
    refreshProgramme();
    loadLibrary(true);
    return result;
  } catch (err) {
    $(resultId).textContent = `${what}: ${err.message}`;
    return null;
  }
}

$("skip").addEventListener("click", () => act("onair-result", "skip", "api/skip", { method: "POST" }));
$("ban-onair").addEventListener("click", () => {
  const now = programme && programme.now;
  if (!now || now.clip_id == null) { $("onair-result").textContent = "no clip on air to ban"; return; }
  act("onair-result", `ban #${now.clip_id}`, `api/clips/${now.clip_id}/ban`, { method: "POST" });
});

// -- library -------------------------------------------------------------------------------

function libraryQuery() {
  const params = new URLSearchParams({ sort: $("f-sort").value, order: $("f-order").value,
                                       limit: "48", offset: String(libraryOffset) });
  for (const [key, id] of [["theme", "f-theme"], ["tag", "f-tag"], ["state", "f-state"]]) {
    const value = $(id).value.trim();
    if (value) params.set(key, value);
  }
  return "api/clips?" + params;
}

async function loadLibrary(fromStart) {
  if (fromStart) libraryOffset = 0;
  let page;
  try {
    page = await api(libraryQuery());
  } catch (err) {
    $("library-total").textContent = err.message;
    return;
  }
  const grid = $("grid");
  if (fromStart) grid.replaceChildren();
  for (const clip of page.clips) grid.append(card(clip));
  libraryOffset += page.clips.length;
  $("library-total").textContent = `${page.total} clips`;
  $("more").hidden = libraryOffset >= page.total;
  if (selected) {
    const fresh = page.clips.find((clip) => clip.id === selected.id);
    if (fresh) showPreview(fresh, false);
  }
}

function card(clip) {
  const node = el("div", { class: "card " + clip.state, "data-id": String(clip.id), title: clip.prompt },
    el("img", { src: clip.thumb, alt: "", loading: "lazy" }),
    el("p", {}, `#${clip.id} ${clip.prompt}`),
    el("p", { class: "state" }, [clip.state, clip.theme, ...(clip.tags || [])].filter(Boolean).join(" · ")));
  node.addEventListener("click", () => showPreview(clip, true));
  return node;
}

function showPreview(clip, load) {
  selected = clip;
  $("preview").hidden = false;
  $("preview").dataset.id = String(clip.id);
  if (load) {
    $("preview-video").src = clip.media;
    $("preview-video").play().catch(() => {});
  }
  $("preview-prompt").textContent = `#${clip.id} ${clip.prompt}`;
  const aired = clip.last_aired ? `, last ${clock(clip.last_aired)}` : "";
  $("preview-facts").textContent = `${clip.state} · ${clip.theme} · ${clip.duration.toFixed(1)} s · aired ${clip.times_aired}×${aired}`;
  $("p-keep").textContent = clip.keep ? "Unkeep" : "Keep";
  $("p-ban").textContent = clip.banned ? "Unban" : "Ban";
}

async function onSelected(what, path, options) {
  if (!selected) return;
  const result = await act("preview-result", what, path, options);
  if (result && result.id === selected.id) showPreview(result, false);
}

$("p-keep").addEventListener("click", () => selected && onSelected(
  selected.keep ? "unkeep" : "keep", `api/clips/${selected.id}/keep`, { method: "POST", body: { keep: !selected.keep } }));
$("p-ban").addEventListener("click", () => selected && onSelected(
  selected.banned ? "unban" : "ban", `api/clips/${selected.id}/${selected.banned ? "unban" : "ban"}`, { method: "POST" }));
$("p-next").addEventListener("click", () => selected && onSelected("air next", `api/clips/${selected.id}/next`, { method: "POST" }));
$("p-delete").addEventListener("click", async () => {
  if (!selected || !confirm(`Delete clip #${selected.id} and its file?`)) return;
  const result = await act("preview-result", "delete", `api/clips/${selected.id}`, { method: "DELETE" });
  if (result) closePreview();
});
$("p-close").addEventListener("click", () => closePreview());
$("filters").addEventListener("submit", (event) => { event.preventDefault(); loadLibrary(true); });
$("more").addEventListener("click", () => loadLibrary(false));

function closePreview() {
  selected = null;
  $("preview").hidden = true;
  $("preview-video").removeAttribute("src");
  $("preview-video").load();
}

// -- theme and schedule --------------------------------------------------------------------

$("theme-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const theme = $("theme-input").value.trim();
  const result = await act("theme-result", `theme "${theme}"`, "api/theme", { method: "POST", body: { theme } });
  if (result) { $("theme-input").value = ""; refreshStatus(); }
});

// -- status: theme, slots, health ----------------------------------------------------------

async function refreshStatus() {
  try {
    const response = await fetch("api/status", { cache: "no-store" });
    showStatus(await response.json());
  } catch (err) {
    /* the daemon restarting: the next round tries again */
  }
}

function showStatus(next) {
  status = next;
  $("channel").textContent = status.channel;
  $("theme-now").textContent = "Theme: " + status.theme;
  $("theme-current").textContent = status.theme;
  $("theme-source").textContent = `(${status.theme_source})`;
  const slots = $("slots");
  slots.replaceChildren();
  const schedule = status.schedule || {};
  if (schedule.current) slots.append(el("li", {}, `now: ${schedule.current.theme} (${schedule.current.trigger})`));
  if (schedule.next) slots.append(el("li", {}, `next: ${schedule.next.theme} at ${schedule.next.at}`));
  if (!schedule.current && !schedule.next) slots.append(el("li", { class: "dim" }, "no [[schedule]] slots"));

  $("config-error").hidden = !status.config_error;
  $("config-error").textContent = status.config_error ? "channel.toml not in force: " + status.config_error : "";
  const pending = status.config_pending_restart || [];
  $("pending").hidden = pending.length === 0;
  $("pending").textContent = "Take effect at the next restart: " + pending.join(", ");
  const healthy = status.playout && status.playout.healthy;
  $("health-verdict").textContent = healthy ? "✓ healthy" : "✗ " + ((status.playout && (status.playout.problem || status.playout.output_problem)) || "not on air");
  $("health-verdict").className = healthy ? "dim" : "error";

  $("outputs").replaceChildren(...status.outputs.map((o) => el("li", { class: o.state === "running" ? "" : "warn" },
    `${o.name} (${o.kind}) ${o.state}, ${o.restarts} restarts${o.problem ? ": " + o.problem : ""}`)));
  const producer = status.producer;
  $("producer").textContent = `${producer.clips_made} made, ${producer.clips_failed} failed` +
    (producer.paused ? `, paused: ${producer.paused}` : "") + (producer.last_error ? `; last error: ${producer.last_error}` : "");
  showRenders(producer.rendering);
  const director = status.director;
  $("director").textContent = `${director.backend}${director.model ? " " + director.model : ""}, ${director.sequences} sequences` +
    (director.fallback_active ? ", offline fallback active" : "") + (director.last_error ? `; last error: ${director.last_error}` : "");
  $("workers").replaceChildren(...(status.workers.length ? status.workers.map((w) => el("li", {},
    `${w.url} ${w.state}, ${w.jobs_done} jobs, ${w.in_flight} in flight${w.last_error ? "; " + w.last_error : ""}`))
    : [el("li", { class: "dim" }, "no remote workers")]));
  const disk = status.disk;
  $("disk").textContent = disk ? `disk: ${(disk.free_bytes / 1e9).toFixed(1)} GB free${disk.full ? ", FULL: production paused" : ""}` : "";
}

// One progress bar per render in flight (`producer.rendering` is a list; older daemons say one line).
function showRenders(rendering) {
  const renders = Array.isArray(rendering) ? rendering : rendering ? [{ prompt: rendering, stage: "", fraction: 0 }] : [];
  $("renders").replaceChildren(...renders.map((r) => el("div", { class: "render" },
    el("div", { class: "dim" }, `${r.worker ? r.worker + ": " : ""}${r.stage || "rendering"} — ${r.prompt || ""}`),
    el("div", { class: "bar" }, el("div", { style: `width: ${Math.round(100 * (r.fraction || 0))}%` })))));
}

// -- events: GET /api/events read with fetch(), since EventSource cannot send the token --------

function addLogLine(line) {
  const log = $("log");
  const time = new Date(line.time * 1000 || Date.now()).toLocaleTimeString();
  log.append(el("li", { class: line.level }, `${time} ${line.level} ${line.logger}: ${line.message}`));
  while (log.children.length > LOG_LINES) log.firstChild.remove();
  log.scrollTop = log.scrollHeight;
}

function onEvent(type, data) {
  if (type === "status") showStatus(data);
  else if (type === "log") addLogLine(data);
  else if (type === "progress") showRenders(data.rendering);
  else if (type === "onair") refreshProgramme();
  else if (type === "clip") loadLibrary(true);
}

async function followEvents() {
  let wait = 1000;
  while (token) {
    try {
      const response = await fetch("api/events", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      if (response.status === 401) { logout("the token was refused"); return; }
      if (!response.ok || !response.body) throw new Error(response.statusText);
      $("events-state").textContent = "live";
      wait = 1000;
      await readEvents(response.body.getReader());
    } catch (err) {
      /* dropped: come back below */
    }
    $("events-state").textContent = "reconnecting…";
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 15000);
  }
}

// Server-sent events: blocks separated by a blank line, `event:` and `data:` lines, `:` comments.
async function readEvents(reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      try {
        onEvent(type, JSON.parse(data.join("\n")));
      } catch (err) {
        console.warn("event not understood", type, err);
      }
    }
  }
}

// -- start ---------------------------------------------------------------------------------

if (token) {
  checkToken(token).then((problem) => (problem ? logout(problem) : enter()), () => enter());
}

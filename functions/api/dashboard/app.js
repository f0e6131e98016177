// graphflow dashboard: hash routes #/runs, #/runs/{id}, #/graphs, #/graphs/{id}, #/editor[?graph={id}].
import {
  api, ApiError, connection, detectMode, forgetConnection, hasCredentials, saveConnection, webSocketUrl,
} from "./api.js";
import { clear, drawDiagram, duration, h, jsonTree, nodeIds, qualityChart, statusBadge, styledDiagram, time } from "./ui.js";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"]);
const FINAL_RECORDS = new Set(["run_succeeded", "run_failed", "run_cancelled", "run_timed_out"]);
const RUNS_POLL_MS = 3000;
const KNOWN_RUNS_KEY = "graphflow.runs";
const main = document.getElementById("main");
let teardown = () => {};

function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  clear(box, h("div", { class: `toast-${kind}` }, message));
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => clear(box), 6000);
}

function describeError(error) {
  if (error instanceof ApiError) return `${error.status} ${error.code || ""}: ${error.message}`;
  return String(error.message || error);
}

// Runs this browser started or opened: the list shows them when the API cannot list runs.
function knownRuns() {
  try {
    return JSON.parse(localStorage.getItem(KNOWN_RUNS_KEY) || "[]");
  } catch {
    return [];
  }
}

function rememberRun(runId) {
  const runs = knownRuns().filter((id) => id !== runId);
  runs.unshift(runId);
  localStorage.setItem(KNOWN_RUNS_KEY, JSON.stringify(runs.slice(0, 200)));
}

// ---------------------------------------------------------------- settings

function openSettings() {
  const dialog = document.getElementById("settings");
  const form = document.getElementById("settings-form");
  const c = connection();
  for (const name of ["access_key", "secret_key", "session_token", "jwt", "region", "ws_url"]) form.elements[name].value = c[name] || "";
  for (const radio of form.elements.mode) radio.checked = radio.value === c.mode;
  showModeFields(form);
  dialog.showModal();
}

function showModeFields(form) {
  const mode = form.elements.mode.value;
  form.querySelector(".mode-iam").hidden = mode !== "iam";
  form.querySelector(".mode-jwt").hidden = mode !== "jwt";
}

function setupSettings() {
  const dialog = document.getElementById("settings");
  const form = document.getElementById("settings-form");
  document.getElementById("settings-open").addEventListener("click", openSettings);
  form.addEventListener("change", () => showModeFields(form));
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "save") {
      const value = (name) => form.elements[name].value.trim();
      saveConnection({
        mode: form.elements.mode.value || connection().mode,
        access_key: value("access_key"), secret_key: value("secret_key"), session_token: value("session_token"),
        jwt: value("jwt"), region: value("region") || "us-east-1", ws_url: value("ws_url"),
      });
      updateBadge();
      route();
    } else if (dialog.returnValue === "forget") {
      forgetConnection();
      updateBadge();
      route();
    }
  });
}

function updateBadge() {
  const c = connection();
  const badge = document.getElementById("auth-badge");
  badge.textContent = c.mode ? `${c.mode}${hasCredentials() ? "" : ": not set"}` : "";
  badge.className = `badge ${hasCredentials() ? "ok" : "warn"}`;
}

// ---------------------------------------------------------------- runs list

function runsView(params) {
  const statusFilter = params.get("status") || "";
  const graphFilter = params.get("graph") || "";
  const tbody = h("tbody");
  const note = h("p", { class: "hint", id: "runs-note" });
  const statusSelect = h("select", { id: "filter-status", name: "status" },
    ["", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"].map((s) =>
      h("option", { value: s, selected: s === statusFilter }, s || "any status")));
  const graphInput = h("input", { id: "filter-graph", name: "graph", value: graphFilter, placeholder: "graph id", list: "graph-ids" });
  const graphList = h("datalist", { id: "graph-ids" });
  const openInput = h("input", { id: "open-run", name: "run", placeholder: "run id", spellcheck: "false" });
  const filters = h("form", { class: "filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (statusSelect.value) q.set("status", statusSelect.value);
    if (graphInput.value.trim()) q.set("graph", graphInput.value.trim());
    location.hash = `#/runs${q.toString() ? "?" + q : ""}`;
  } },
  h("label", {}, "Status ", statusSelect), h("label", {}, "Graph ", graphInput), graphList,
  h("button", { type: "submit" }, "Filter"));
  statusSelect.addEventListener("change", () => filters.requestSubmit());
  const opener = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const id = openInput.value.trim();
    if (id) location.hash = `#/runs/${encodeURIComponent(id)}`;
  } }, h("label", {}, "Open a run ", openInput), h("button", { type: "submit", class: "secondary" }, "Open"));
  clear(main,
    h("h1", {}, "Runs"),
    h("div", { class: "toolbar" }, filters, opener),
    note,
    h("div", { class: "table-wrap" }, h("table", { class: "runs", id: "runs-table" },
      h("thead", {}, h("tr", {}, ["Run", "Status", "Graph", "Started", "Steps", "Duration"].map((t) => h("th", { scope: "col" }, t)))),
      tbody)));

  api("/graphs").then((data) => clear(graphList, data.graphs.map((g) => h("option", { value: g.graph_id }, g.name)))).catch(() => {});

  let stopped = false;
  let timer = null;
  const refresh = async () => {
    try {
      const runs = await listRuns(statusFilter, graphFilter, note);
      const now = Date.now() / 1000;
      clear(tbody, runs.length ? runs.map((run) => h("tr", { "data-run-id": run.run_id, "data-status": run.status },
        h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(run.run_id)}` }, run.run_id)),
        h("td", {}, statusBadge(run.status)),
        h("td", {}, h("a", { href: `#/graphs/${encodeURIComponent(run.graph_id)}` }, `${run.graph_id} v${run.graph_version}`)),
        h("td", {}, time(run.created_at)),
        h("td", { class: "num" }, String(run.step)),
        h("td", { class: "num" }, duration((run.finished_at || now) - run.created_at)),
      )) : h("tr", {}, h("td", { colspan: 6, class: "hint" }, "No runs yet: start one from a graph's page.")));
    } catch (error) {
      note.textContent = describeError(error);
    }
    if (!stopped) timer = setTimeout(refresh, RUNS_POLL_MS);
  };
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// GET /runs when the API lists runs; else the runs this browser started or opened, read one by one.
async function listRuns(status, graph, note) {
  const q = new URLSearchParams({ limit: "100" });
  if (status) q.set("status", status);
  if (graph) q.set("graph_id", graph);
  try {
    const data = await api(`/runs?${q}`);
    note.textContent = `Refreshed every ${RUNS_POLL_MS / 1000} s.`;
    return data.runs;
  } catch (error) {
    if (!(error instanceof ApiError) || ![404, 405].includes(error.status)) throw error;
  }
  note.textContent = `This API does not list runs: showing the runs this browser started or opened, refreshed every ${RUNS_POLL_MS / 1000} s.`;
  const runs = [];
  for (const id of knownRuns().slice(0, 50)) {
    try {
      runs.push(await api(`/runs/${encodeURIComponent(id)}?include_state=false`));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) continue;
      throw error;
    }
  }
  return runs.filter((r) => (!status || r.status === status) && (!graph || r.graph_id === graph))
    .sort((a, b) => b.created_at - a.created_at);
}

// ---------------------------------------------------------------- a run

// What a run waits for (the run view's `waiting`): its kind and node, and until when.
function describeWaiting(waiting) {
  if (typeof waiting !== "object") return String(waiting);
  const kind = waiting.kind || waiting.type || "waiting";
  const until = waiting.until || waiting.expires_at || waiting.fires_at;
  const when = typeof until === "number" ? time(until) : until;
  return `${kind}${waiting.node ? ` at ${waiting.node}` : ""}${when ? ` until ${when}` : ""}`;
}

function runView(runId) {
  rememberRun(runId);
  const header = h("div", { class: "run-header" });
  const actions = h("div", { class: "actions", id: "run-actions" });
  const diagram = h("div", { class: "diagram", id: "run-diagram", "aria-label": "The run's graph" });
  const fanout = h("div", { id: "fanout" });
  const errorBox = h("div", { id: "run-error" });
  const callbackBox = h("div", { id: "callback" });
  const logPane = h("ol", { class: "log", id: "log", "aria-live": "off", tabindex: "0", "aria-label": "Log" });
  const logStatus = h("span", { class: "hint", id: "log-status" }, "connecting…");
  const quality = h("section", { id: "quality", hidden: true });
  const stateBox = h("div", { id: "state" });
  clear(main,
    h("p", {}, h("a", { href: "#/runs" }, "← Runs")),
    h("h1", {}, "Run ", h("code", {}, runId)),
    header, actions, errorBox, callbackBox,
    h("div", { class: "run-grid" },
      h("section", {}, h("h2", {}, "Graph"), diagram, fanout),
      h("section", {}, h("h2", {}, "Log ", logStatus), logPane)),
    quality,
    h("section", {}, h("h2", {}, "State"), stateBox));

  const records = new Map();
  let lastSeq = -1;
  let run = null;
  let source = null;
  let ids = {};
  let socket = null;
  let stopped = false;
  let retry = 0;
  let reconnectTimer = null;
  let drawTimer = null;
  let viewTimer = null;
  let stateLoadedFor = null;

  const marks = () => {
    const visited = new Set();
    for (const r of records.values()) if (r.node && ["step_started", "step_succeeded", "joined", "callback_received"].includes(r.type)) visited.add(r.node);
    const current = new Set();
    const failed = new Set();
    if (run && !TERMINAL.has(run.status)) {
      if (run.fanout) for (const b of run.fanout.running || []) current.add(b.node);
      else if (run.current_node) current.add(run.current_node);
    }
    if (run && run.error && run.error.node) failed.add(run.error.node);
    for (const n of current) visited.delete(n);
    for (const n of failed) visited.delete(n);
    return { visited, current, failed };
  };

  const redraw = () => {
    clearTimeout(drawTimer);
    drawTimer = setTimeout(async () => {
      if (!source) return;
      const m = marks();
      if (!(await drawDiagram(diagram, styledDiagram(source, ids, m)))) return;
      diagram.dataset.current = [...m.current].sort().join(",");
      diagram.dataset.visited = [...m.visited].sort().join(",");
    }, 150);
  };

  const renderHeader = () => {
    const elapsed = (run.finished_at || Date.now() / 1000) - run.created_at;
    const fact = (label, value, id) => h("div", {}, h("dt", {}, label), h("dd", { id }, value));
    const waiting = run.waiting ? describeWaiting(run.waiting) : null;
    clear(header, h("dl", { class: "facts" },
      fact("Status", statusBadge(run.status), "run-status"),
      fact("Graph", h("a", { href: `#/graphs/${encodeURIComponent(run.graph_id)}` }, `${run.graph_id} v${run.graph_version}`)),
      fact("Node", run.current_node || "—", "run-node"),
      fact("Steps", String(run.step)),
      fact("Started", time(run.created_at)),
      fact("Duration", duration(elapsed)),
      waiting ? fact("Waiting", waiting, "run-waiting") : null));
    const button = (label, onclick, cls = "") => h("button", { type: "button", class: cls, onclick }, label);
    clear(actions,
      !TERMINAL.has(run.status) ? button("Cancel", cancel, "danger") : null,
      ["FAILED", "TIMED_OUT"].includes(run.status) ? button("Redrive", redrive) : null,
      button("Refresh state", () => loadState(true), "secondary"));
    clear(errorBox, run.error ? h("div", { class: "error-box", role: "alert" },
      h("strong", {}, `${run.error.type || "Error"}${run.error.node ? ` in ${run.error.node}` : ""}: `), run.error.message) : null);
    renderFanout();
    renderCallback();
  };

  const renderFanout = () => {
    const f = run.fanout;
    if (!f) {
      const branches = new Map();
      for (const r of records.values()) if (r.branch) branches.set(r.branch, r);
      clear(fanout, branches.size ? h("div", { class: "fanout" }, h("h3", {}, "Branches"),
        h("ul", { class: "branches" }, [...branches.entries()].map(([b, r]) =>
          h("li", { "data-branch": b }, h("code", {}, b), ` ${r.type === "branch_succeeded" ? "arrived" : r.type === "branch_failed" ? "failed" : "at " + (r.node || "")}`)))) : null);
      return;
    }
    clear(fanout, h("div", { class: "fanout", id: "fanout-progress" },
      h("h3", {}, `${f.kind === "map" ? "Map" : "Parallel"} at ${f.node} → ${f.join}`),
      h("p", {}, `${f.arrived} of ${f.size} arrived, ${f.started} started, ${(f.running || []).length} running`),
      h("progress", { max: f.size || 1, value: f.arrived, "aria-label": "branches arrived" }),
      h("ul", { class: "branches" }, (f.running || []).map((b) => h("li", { "data-branch": b.branch }, h("code", {}, b.branch), ` at ${b.node} (step ${b.step})`)))));
  };

  const openCallback = () => {
    if (!run || TERMINAL.has(run.status)) return null;
    let waiting = null;
    for (const r of [...records.values()].sort((a, b) => a.seq - b.seq)) {
      if (r.type === "callback_waiting") waiting = r;
      else if (waiting && (r.type === "callback_received" || (r.type === "step_failed" && r.node === waiting.node))) waiting = null;
    }
    return waiting;
  };

  const renderCallback = () => {
    const waiting = openCallback();
    if (!waiting || !waiting.data || !waiting.data.token) {
      clear(callbackBox);
      delete callbackBox.dataset.token;
      return;
    }
    const token = waiting.data.token;
    if (callbackBox.dataset.token === token) return; // keep what the user is typing into the open form
    callbackBox.dataset.token = token;
    const data = h("textarea", { id: "callback-data", rows: 3, spellcheck: "false", "aria-label": "Data to merge into the state (JSON)" }, "{}");
    const reason = h("input", { id: "callback-reason", placeholder: "why (for reject)", "aria-label": "Reason for rejecting" });
    clear(callbackBox, h("div", { class: "callback-box" },
      h("h3", {}, `Waiting for a callback at ${waiting.node}`),
      waiting.data.expires_at ? h("p", { class: "hint" }, `expires ${time(waiting.data.expires_at)}`) : null,
      h("label", {}, "Data (JSON) ", data),
      h("div", { class: "actions" },
        h("button", { type: "button", id: "approve", onclick: () => resolve(token, true, data.value, reason.value) }, "Approve"),
        reason,
        h("button", { type: "button", id: "reject", class: "danger", onclick: () => resolve(token, false, data.value, reason.value) }, "Reject"))));
  };

  const resolve = async (token, approve, dataText, reason) => {
    try {
      if (approve) {
        let data;
        try {
          data = JSON.parse(dataText || "{}");
        } catch (error) {
          toast(`data is not JSON: ${error.message}`, "error");
          return;
        }
        await api(`/callbacks/${encodeURIComponent(token)}`, { method: "POST", body: { decision: "approve", data } });
        toast("approved");
      } else {
        await api(`/callbacks/${encodeURIComponent(token)}/fail`, { method: "POST", body: { reason: reason || "rejected in the dashboard" } });
        toast("rejected");
      }
      refreshView();
      reconnect(0);
    } catch (error) {
      toast(describeError(error), "error");
    }
  };

  const cancel = async () => {
    try {
      run = await api(`/runs/${encodeURIComponent(runId)}/cancel`, { method: "POST", body: { reason: "cancelled in the dashboard" } });
      toast("cancelled");
      run.state = undefined;
      renderHeader();
      redraw();
    } catch (error) {
      toast(describeError(error), "error");
    }
  };

  const redrive = async () => {
    try {
      await api(`/runs/${encodeURIComponent(runId)}/redrive`, { method: "POST", body: {} });
      toast("redriven");
      await refreshView();
      reconnect(0);
    } catch (error) {
      toast(describeError(error), "error");
    }
  };

  const refreshView = async () => {
    try {
      run = await api(`/runs/${encodeURIComponent(runId)}?include_state=false`);
      renderHeader();
      redraw();
      if (TERMINAL.has(run.status) && stateLoadedFor !== run.updated_at) loadState(false);
    } catch (error) {
      toast(describeError(error), "error");
    }
  };
  const scheduleView = () => {
    clearTimeout(viewTimer);
    viewTimer = setTimeout(refreshView, 300);
  };

  const loadState = async (force) => {
    if (!run) return;
    stateLoadedFor = run.updated_at;
    try {
      const full = await api(`/runs/${encodeURIComponent(runId)}`);
      renderState(full.state || {}, null);
    } catch (error) {
      if (error instanceof ApiError && error.code === "response_too_large") renderState(null, keysFromLog());
      else if (force) toast(describeError(error), "error");
    }
  };

  const keysFromLog = () => {
    const keys = new Set();
    for (const r of records.values()) {
      const m = r.type === "step_succeeded" && /updated (.*)$/.exec(r.message || "");
      if (m && m[1] !== "nothing") for (const k of m[1].split(", ")) keys.add(k);
    }
    return [...keys].sort();
  };

  // A large state is read key by key: each key is fetched when its entry is opened.
  const renderState = (state, keys) => {
    if (state) {
      clear(stateBox, Object.keys(state).length ? Object.entries(state).map(([k, v]) => {
        const node = jsonTree(v, k);
        node.dataset.key = k;
        return node;
      }) : h("p", { class: "hint" }, "empty"));
      renderQuality(state.history, state.report);
      return;
    }
    const input = h("input", { placeholder: "state key", "aria-label": "State key" });
    const list = h("div", {});
    const add = (k) => {
      const details = h("details", { class: "json-node", "data-key": k }, h("summary", {}, h("span", { class: "json-key" }, k)));
      details.addEventListener("toggle", async () => {
        if (!details.open || details.dataset.loaded) return;
        details.dataset.loaded = "1";
        try {
          details.append(jsonTree(await api(`/runs/${encodeURIComponent(runId)}/state/${encodeURIComponent(k)}`), null, true));
        } catch (error) {
          details.append(h("p", { class: "error" }, describeError(error)));
        }
      });
      list.append(details);
    };
    keys.forEach(add);
    clear(stateBox, h("p", { class: "hint" }, "The state is too large for one response: open a key to read it."), list,
      h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) add(input.value.trim()); input.value = ""; } },
        input, h("button", { type: "submit", class: "secondary" }, "Read key")));
    Promise.all(["history", "report"].map((k) => api(`/runs/${encodeURIComponent(runId)}/state/${k}`).catch(() => undefined)))
      .then(([history, report]) => renderQuality(history, report));
  };

  const renderQuality = (history, report) => {
    if (!Array.isArray(history) || !history.length) {
      quality.hidden = true;
      return;
    }
    quality.hidden = false;
    const results = (report && report.results) || [];
    const q = (report && report.quality) || {};
    clear(quality, h("h2", {}, "Data quality"),
      report ? h("p", {}, `score ${q.score_before ?? "?"} → ${q.score_after ?? "?"} (target ${q.target_score ?? "?"}, ${q.target_met ? "met" : "not met"}), ${q.iterations ?? history.length} iteration(s), anomalies found ${q.anomalies_found ?? "?"}, fixed ${q.anomalies_fixed ?? "?"}, remaining ${q.anomalies_remaining ?? "?"}`) : null,
      h("figure", {}, qualityChart(history), h("figcaption", {}, h("span", { class: "key score" }, "■ quality score"), " ", h("span", { class: "key anomalies" }, "■ anomaly count"))),
      results.length ? h("div", { class: "table-wrap" }, h("table", { class: "report", id: "dq-report" },
        h("caption", {}, `Final report: ${report.success ? "every check passed" : "some checks failed"}`),
        h("thead", {}, h("tr", {}, ["Check", "Success", "Elements", "Unexpected", "Unexpected %", "Examples"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, results.map((r) => h("tr", { class: r.success ? "" : "failed" },
          h("td", {}, r.check || (r.expectation_config && r.expectation_config.expectation_type)),
          h("td", {}, r.success ? "✓ yes" : "✗ no"),
          h("td", { class: "num" }, String(r.result.element_count)),
          h("td", { class: "num" }, String(r.result.unexpected_count)),
          h("td", { class: "num" }, `${r.result.unexpected_percent}%`),
          h("td", {}, h("code", {}, JSON.stringify(r.result.partial_unexpected_list || []).slice(0, 200)))))))) : null);
  };

  const addRecords = (incoming) => {
    let changed = false;
    for (const r of incoming) {
      if (records.has(r.seq)) continue;
      records.set(r.seq, r);
      changed = true;
    }
    if (!changed) return;
    const ordered = [...records.values()].sort((a, b) => a.seq - b.seq);
    const gapAt = ordered.findIndex((r, i) => r.seq !== (i === 0 ? 0 : ordered[i - 1].seq + 1));
    lastSeq = gapAt === -1 ? ordered[ordered.length - 1].seq : (gapAt === 0 ? -1 : ordered[gapAt - 1].seq);
    if (gapAt !== -1) fillGap();
    const atBottom = logPane.scrollHeight - logPane.scrollTop - logPane.clientHeight < 24;
    clear(logPane, ordered.map((r) => h("li", { class: `rec rec-${r.type}`, "data-seq": r.seq, "data-type": r.type },
      h("span", { class: "seq" }, String(r.seq)),
      h("span", { class: "type" }, r.type),
      r.branch ? h("span", { class: "branch" }, r.branch) : null,
      h("span", { class: "msg" }, r.message || r.node || ""))));
    if (atBottom) logPane.scrollTop = logPane.scrollHeight;
    const final = ordered.find((r) => FINAL_RECORDS.has(r.type));
    logStatus.textContent = final ? `ended: ${final.type}` : socket && socket.readyState === WebSocket.OPEN ? "live" : "connecting…";
    if (run) renderCallback();
    scheduleView();
  };

  // A record that did not arrive live (throttling, a dropped frame) is read over HTTP.
  const fillGap = async () => {
    if (fillGap.busy) return;
    fillGap.busy = true;
    try {
      const page = await api(`/runs/${encodeURIComponent(runId)}/logs?after=${lastSeq}&limit=1000`);
      fillGap.busy = false;
      addRecords(page.records);
    } catch {
      fillGap.busy = false;
    }
  };

  const ended = () => [...records.values()].some((r) => FINAL_RECORDS.has(r.type));

  const connect = async () => {
    if (stopped) return;
    let url;
    try {
      url = await webSocketUrl(runId, lastSeq);
    } catch (error) {
      logStatus.textContent = describeError(error);
      return;
    }
    const ws = new WebSocket(url);
    socket = ws;
    ws.addEventListener("open", () => {
      retry = 0;
      logStatus.textContent = ended() ? logStatus.textContent : "live";
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "records") addRecords(frame.records || []);
      else if (frame.type === "error") logStatus.textContent = `error: ${frame.code}`;
      else if (frame.type === "replayed" && TERMINAL.has(frame.status) && lastSeq < frame.live_from - 1) fillGap();
      if (ended()) ws.close(1000);
    });
    ws.addEventListener("close", () => {
      if (socket === ws) socket = null;
      if (stopped || ended()) return;
      logStatus.textContent = "reconnecting…";
      reconnect(Math.min(10000, 500 * 2 ** retry++));
    });
  };
  // After a drop the subscription resumes from the last seq handled (`after`), so nothing is lost.
  const reconnect = (delay) => {
    clearTimeout(reconnectTimer);
    if (socket) {
      const old = socket;
      socket = null;
      old.close(1000);
    }
    reconnectTimer = setTimeout(connect, delay);
  };

  (async () => {
    try {
      run = await api(`/runs/${encodeURIComponent(runId)}?include_state=false`);
    } catch (error) {
      clear(header, h("p", { class: "error", role: "alert" }, describeError(error)));
      return;
    }
    renderHeader();
    connect();
    try {
      source = await api(`/graphs/${encodeURIComponent(run.graph_id)}/diagram?version=${run.graph_version}`, { accept: "text/plain" });
      ids = nodeIds(source);
      redraw();
    } catch (error) {
      clear(diagram, h("p", { class: "error" }, describeError(error)));
    }
    loadState(false);
  })();

  return () => {
    stopped = true;
    clearTimeout(reconnectTimer);
    clearTimeout(drawTimer);
    clearTimeout(viewTimer);
    if (socket) socket.close(1000);
  };
}

// ---------------------------------------------------------------- graphs

function graphsView() {
  const tbody = h("tbody");
  clear(main, h("h1", {}, "Graphs"),
    h("p", {}, h("a", { href: "#/editor", class: "button" }, "New graph")),
    h("div", { class: "table-wrap" }, h("table", { id: "graphs-table" },
      h("thead", {}, h("tr", {}, ["Graph", "Name", "Version", "Created"].map((t) => h("th", { scope: "col" }, t)))), tbody)));
  api("/graphs").then((data) => clear(tbody, data.graphs.length ? data.graphs.map((g) => h("tr", {},
    h("td", {}, h("a", { href: `#/graphs/${encodeURIComponent(g.graph_id)}` }, g.graph_id)),
    h("td", {}, g.name), h("td", { class: "num" }, String(g.version)), h("td", {}, time(g.created_at))))
    : h("tr", {}, h("td", { colspan: 4, class: "hint" }, "No graphs yet."))))
    .catch((error) => clear(tbody, h("tr", {}, h("td", { colspan: 4, class: "error" }, describeError(error)))));
  return () => {};
}

function graphView(graphId) {
  const diagram = h("div", { class: "diagram", id: "graph-diagram" });
  const json = h("pre", { class: "json", id: "graph-json", tabindex: "0" });
  const stateInput = h("textarea", { id: "initial-state", rows: 6, spellcheck: "false" }, "{}");
  const problem = h("p", { class: "error", id: "start-problem", role: "alert" });
  const title = h("h1", {}, "Graph ", h("code", {}, graphId));
  const facts = h("p", { class: "hint" });
  const start = async (e) => {
    e.preventDefault();
    problem.textContent = "";
    let state;
    try {
      state = JSON.parse(stateInput.value || "{}");
    } catch (error) {
      problem.textContent = `initial state is not JSON: ${error.message}`;
      return;
    }
    try {
      const accepted = await api("/runs", { method: "POST", body: { graph_id: graphId, initial_state: state } });
      rememberRun(accepted.run_id);
      location.hash = `#/runs/${encodeURIComponent(accepted.run_id)}`;
    } catch (error) {
      problem.textContent = describeError(error);
    }
  };
  clear(main, h("p", {}, h("a", { href: "#/graphs" }, "← Graphs")), title, facts,
    h("div", { class: "run-grid" },
      h("section", {}, h("h2", {}, "Diagram"), diagram),
      h("section", {}, h("h2", {}, "Start a run"),
        h("form", { id: "start-form", onsubmit: start },
          h("label", { for: "initial-state" }, "Initial state (JSON)"), stateInput, problem,
          h("div", { class: "actions" }, h("button", { type: "submit", id: "start-run" }, "Start run"),
            h("a", { class: "button secondary", href: `#/editor?graph=${encodeURIComponent(graphId)}` }, "New version"))))),
    h("section", {}, h("h2", {}, "Definition"), json));
  api(`/graphs/${encodeURIComponent(graphId)}`).then((g) => {
    facts.textContent = `${g.name}, version ${g.version}, created ${time(g.created_at)}`;
    json.textContent = JSON.stringify(g.definition, null, 2);
  }).catch((error) => { facts.textContent = describeError(error); });
  api(`/graphs/${encodeURIComponent(graphId)}/diagram`, { accept: "text/plain" }).then((src) => drawDiagram(diagram, src))
    .catch((error) => clear(diagram, h("p", { class: "error" }, describeError(error))));
  return () => {};
}

// ---------------------------------------------------------------- editor

const EXAMPLE = {
  name: "hello",
  start_node: "first",
  nodes: { first: { tool: "dq.initialize" }, second: { tool: "dq.profile" } },
  edges: { first: "second" },
};

function editorView(params) {
  const graphId = params.get("graph");
  const text = h("textarea", { id: "editor-text", rows: 24, spellcheck: "false", "aria-describedby": "editor-status", "aria-label": "Graph definition (JSON)" });
  const status = h("p", { id: "editor-status", role: "status" });
  const problems = h("ul", { id: "problems", class: "problems" });
  const nodeList = h("ul", { id: "editor-nodes", class: "nodes" });
  const preview = h("div", { class: "diagram", id: "preview" });
  const previewNote = h("p", { class: "hint", id: "preview-note" });
  const idInput = h("input", { id: "graph-id", name: "graph_id", placeholder: "random if empty", value: graphId || "", readonly: graphId ? true : null, pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,127}" });
  const save = h("button", { type: "submit", id: "save-graph" }, graphId ? "Save new version" : "Create graph");
  const form = h("form", { id: "editor-form", onsubmit: (e) => { e.preventDefault(); submit(); } },
    h("label", {}, "Graph id ", idInput), h("label", { for: "editor-text" }, "Definition (JSON)"), text, status,
    h("div", { class: "actions" }, save));
  clear(main, h("h1", {}, graphId ? `New version of ${graphId}` : "New graph"),
    h("div", { class: "editor-grid" },
      h("section", {}, form),
      h("section", {}, h("h2", {}, "Nodes"), nodeList, h("h2", {}, "Other problems"), problems,
        h("h2", {}, "Preview"), previewNote, preview)));

  let timer = null;
  let generation = 0;
  let lastValid = null;
  const parse = () => {
    try {
      return { value: JSON.parse(text.value) };
    } catch (error) {
      return { error: error.message };
    }
  };
  // Problems are shown next to the node or edge they name (`nodes.x...`, `edges.x...`), the rest below.
  const showProblems = (list, definition) => {
    const byNode = new Map();
    const general = [];
    for (const p of list) {
      const m = /^(nodes|edges)\.([^.[\]]+)/.exec(p.where || "");
      if (m) {
        if (!byNode.has(m[2])) byNode.set(m[2], []);
        byNode.get(m[2]).push(p);
      } else general.push(p);
    }
    const names = new Set();
    const nodes = definition && definition.nodes;
    if (Array.isArray(nodes)) nodes.forEach((n) => n && n.name && names.add(String(n.name)));
    else if (nodes && typeof nodes === "object") Object.keys(nodes).forEach((n) => names.add(n));
    for (const n of byNode.keys()) names.add(n);
    clear(nodeList, [...names].map((name) => {
      const mine = byNode.get(name) || [];
      return h("li", { class: mine.length ? "node has-problem" : "node", "data-node": name },
        h("code", {}, name), mine.length ? h("ul", { class: "node-problems" }, mine.map((p) => h("li", { class: "problem", "data-where": p.where }, `${p.where}: ${p.message}`))) : " ✓");
    }));
    clear(problems, general.length ? general.map((p) => h("li", { class: "problem", "data-where": p.where }, `${p.where}: ${p.message}`))
      : h("li", { class: "hint" }, "none"));
  };
  const validate = async () => {
    const mine = ++generation;
    const parsed = parse();
    if (parsed.error) {
      status.textContent = `not JSON: ${parsed.error}`;
      status.className = "error";
      return;
    }
    try {
      const result = await api("/graphs/validate", { method: "POST", body: text.value });
      if (mine !== generation) return;
      status.textContent = result.valid ? "valid" : `${result.problems.length} problem(s)`;
      status.className = result.valid ? "ok" : "error";
      showProblems(result.problems, parsed.value);
      if (result.mermaid) {
        lastValid = result.mermaid;
        previewNote.textContent = "";
        drawDiagram(preview, result.mermaid);
      } else if (lastValid) {
        // The last valid version, its nodes that now have problems marked.
        const named = new Set(result.problems.map((p) => (/^(?:nodes|edges)\.([^.[\]]+)/.exec(p.where || "") || [])[1]).filter(Boolean));
        previewNote.textContent = "The definition has problems: the preview is of the last valid version.";
        drawDiagram(preview, styledDiagram(lastValid, nodeIds(lastValid), { failed: named }));
      }
    } catch (error) {
      if (mine !== generation) return;
      status.textContent = describeError(error);
      status.className = "error";
    }
  };
  const submit = async () => {
    const id = idInput.value.trim();
    try {
      const created = graphId
        ? await api(`/graphs/${encodeURIComponent(graphId)}`, { method: "PUT", body: text.value })
        : await api(`/graphs${id ? `?graph_id=${encodeURIComponent(id)}` : ""}`, { method: "POST", body: text.value });
      toast(`saved ${created.graph_id} v${created.version}`);
      location.hash = `#/graphs/${encodeURIComponent(created.graph_id)}`;
    } catch (error) {
      status.textContent = describeError(error);
      status.className = "error";
      const found = error.body && error.body.details && error.body.details.problems;
      if (found) showProblems(found, parse().value);
    }
  };
  text.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(validate, 400);
  });
  const load = graphId ? api(`/graphs/${encodeURIComponent(graphId)}`).then((g) => JSON.stringify(g.definition, null, 2))
    : Promise.resolve(JSON.stringify(EXAMPLE, null, 2));
  load.then((value) => { text.value = value; validate(); }).catch((error) => { status.textContent = describeError(error); });
  return () => clearTimeout(timer);
}

// ---------------------------------------------------------------- routing

async function route() {
  teardown();
  teardown = () => {};
  const [path, query] = (location.hash.replace(/^#/, "") || "/runs").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === parts[0]) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  await detectMode().catch(() => {});
  updateBadge();
  if (!hasCredentials()) {
    clear(main, h("h1", {}, "Connect"), h("p", {}, `This API expects ${connection().mode === "jwt" ? "a JWT" : "AWS credentials (SigV4)"}: enter them in Settings.`),
      h("button", { type: "button", onclick: openSettings }, "Open settings"));
    return;
  }
  if (parts[0] === "runs" && parts[1]) teardown = runView(parts[1]);
  else if (parts[0] === "graphs" && parts[1]) teardown = graphView(parts[1]);
  else if (parts[0] === "graphs") teardown = graphsView();
  else if (parts[0] === "editor") teardown = editorView(params);
  else teardown = runsView(params);
  main.focus({ preventScroll: true });
}

setupSettings();
window.addEventListener("hashchange", route);
route();

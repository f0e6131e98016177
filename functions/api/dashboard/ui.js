// Small DOM helpers: elements, collapsible JSON, the quality chart, diagrams.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function time(epochSeconds) {
  if (!epochSeconds) return "";
  return new Date(epochSeconds * 1000).toLocaleString(undefined, { hour12: false });
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function statusBadge(status) {
  return h("span", { class: `status status-${String(status).toLowerCase()}` }, status);
}

const CHILDREN_SHOWN = 200;

// A JSON value as nested <details>: objects and arrays render their children when first opened.
export function jsonTree(value, label = null, open = false) {
  if (value === null || typeof value !== "object") {
    return h("div", { class: "json-leaf" }, label !== null ? h("span", { class: "json-key" }, `${label}: `) : null,
      h("span", { class: `json-${value === null ? "null" : typeof value}` }, JSON.stringify(value)));
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const summary = h("summary", {},
    label !== null ? h("span", { class: "json-key" }, `${label}: `) : null,
    h("span", { class: "json-type" }, Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`));
  const details = h("details", { class: "json-node" }, summary);
  let rendered = false;
  const render = () => {
    if (rendered) return;
    rendered = true;
    const body = h("div", { class: "json-children" });
    for (const [k, v] of entries.slice(0, CHILDREN_SHOWN)) body.append(jsonTree(v, k));
    if (entries.length > CHILDREN_SHOWN) body.append(h("div", { class: "hint" }, `… ${entries.length - CHILDREN_SHOWN} more`));
    details.append(body);
  };
  details.addEventListener("toggle", () => details.open && render());
  if (open) {
    details.open = true;
    render();
  }
  return details;
}

// The quality score and anomaly count per iteration, as an inline SVG line chart.
export function qualityChart(history) {
  const width = 560, height = 220, left = 44, right = 44, top = 16, bottom = 32;
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs = {}, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart", "aria-labelledby": "chart-title" });
  svg.append(el("title", { id: "chart-title" }, "Quality score and anomaly count per iteration"));
  const points = history.map((h, i) => ({ x: h.iteration ?? i, score: Number(h.quality_score) || 0, anomalies: Number(h.anomaly_count) || 0 }));
  if (!points.length) return svg;
  const xs = points.map((p) => p.x);
  const xMin = Math.min(...xs), xMax = Math.max(...xs, xMin + 1);
  const maxScore = Math.max(1, ...points.map((p) => p.score));
  const maxAnomalies = Math.max(1, ...points.map((p) => p.anomalies));
  const x = (v) => left + ((v - xMin) / (xMax - xMin)) * (width - left - right);
  const yScore = (v) => top + (1 - v / maxScore) * (height - top - bottom);
  const yAnom = (v) => top + (1 - v / maxAnomalies) * (height - top - bottom);
  svg.append(el("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, class: "axis" }));
  svg.append(el("line", { x1: left, y1: top, x2: left, y2: height - bottom, class: "axis" }));
  svg.append(el("line", { x1: width - right, y1: top, x2: width - right, y2: height - bottom, class: "axis" }));
  svg.append(el("text", { x: left - 6, y: top + 4, "text-anchor": "end", class: "tick score" }, maxScore.toFixed(2)));
  svg.append(el("text", { x: left - 6, y: height - bottom, "text-anchor": "end", class: "tick score" }, "0"));
  svg.append(el("text", { x: width - right + 6, y: top + 4, class: "tick anomalies" }, String(maxAnomalies)));
  svg.append(el("text", { x: width - right + 6, y: height - bottom, class: "tick anomalies" }, "0"));
  for (const p of points) {
    svg.append(el("text", { x: x(p.x), y: height - bottom + 16, "text-anchor": "middle", class: "tick" }, String(p.x)));
  }
  svg.append(el("text", { x: width / 2, y: height - 2, "text-anchor": "middle", class: "tick" }, "iteration"));
  const line = (key, y, cls) => {
    svg.append(el("polyline", { points: points.map((p) => `${x(p.x)},${y(p[key])}`).join(" "), class: `series ${cls}` }));
    for (const p of points) {
      const dot = el("circle", { cx: x(p.x), cy: y(p[key]), r: 4, class: `dot ${cls}` });
      dot.append(el("title", {}, `iteration ${p.x}: ${key === "score" ? "score" : "anomalies"} ${p[key]}`));
      svg.append(dot);
    }
  };
  line("score", yScore, "score");
  line("anomalies", yAnom, "anomalies");
  return svg;
}

let diagramCounter = 0;

// Draw Mermaid source into `container`; false if mermaid is not loaded or cannot draw it.
export async function drawDiagram(container, source) {
  const mermaid = window.mermaid;
  if (!mermaid) {
    clear(container, h("pre", { class: "mermaid-source" }, source));
    return false;
  }
  if (!drawDiagram.ready) {
    mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
    drawDiagram.ready = true;
  }
  // Renders may overlap: only the one asked for last is shown.
  const token = (container.drawToken || 0) + 1;
  container.drawToken = token;
  try {
    diagramCounter += 1;
    const { svg } = await mermaid.render(`diagram-${diagramCounter}`, source);
    if (container.drawToken !== token) return false;
    container.innerHTML = svg;
    return true;
  } catch (error) {
    if (container.drawToken !== token) return false;
    clear(container, h("p", { class: "error" }, `diagram: ${error.message || error}`), h("pre", { class: "mermaid-source" }, source));
    return false;
  }
}

// Mermaid ids of the nodes in a diagram the API drew (engine/mermaid.py: `n_<name>` declarations).
export function nodeIds(source) {
  const ids = {};
  const declaration = /^\s*(n_[A-Za-z0-9_]+)[([{/]+"(.*?)<br\/>/;
  for (const line of source.split("\n")) {
    const match = declaration.exec(line);
    if (match) ids[match[2].replace(/#quot;/g, '"').replace(/#124;/g, "|")] = match[1];
  }
  return ids;
}

// The diagram with classDef/class lines marking visited, current and failed nodes.
export function styledDiagram(source, ids, marks) {
  const lines = [
    source.trimEnd(),
    "    classDef visited fill:#dbeafe,stroke:#1d4ed8,stroke-width:2px",
    "    classDef current fill:#fef08a,stroke:#a16207,stroke-width:4px",
    "    classDef failed fill:#fecaca,stroke:#b91c1c,stroke-width:3px",
  ];
  for (const kind of ["visited", "current", "failed"]) {
    const names = [...(marks[kind] || [])].map((n) => ids[n]).filter(Boolean);
    if (names.length) lines.push(`    class ${[...new Set(names)].join(",")} ${kind}`);
  }
  return lines.join("\n") + "\n";
}

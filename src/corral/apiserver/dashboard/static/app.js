// corral dashboard: read-only, plain JS, no build step.
// State comes from GET /dashboard/api/state (one compact summary computed by the API server);
// events arrive live from a watch on /api/v1/events. Both use the user's bearer token,
// taken from the URL fragment (#token=...) that `corral up` prints, or typed in.
"use strict";

const state = { token: null, history: {}, events: [], eventsRV: null };

function readToken() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem("corral-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("corral-token");
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" } });
  if (response.status === 401) { showLogin(); throw new Error("unauthorized"); }
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response;
}

function showLogin() {
  document.getElementById("login").hidden = false;
}

function showError(message) {
  const box = document.getElementById("error");
  box.hidden = !message;
  box.textContent = message || "";
}

function setTab(name) {
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.tab === name);
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== `tab-${name}`;
}

function fillRows(tableId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows);
}

function pct(x) { return `${(100 * x).toFixed(1)} %`; }

function quotaOf(queue, resource) {
  let total = 0;
  for (const group of queue.spec.resourceGroups || []) {
    for (const flavor of group.flavors || []) {
      for (const quota of flavor.resources || []) {
        if (quota.name === resource) total += Number(quota.nominalQuota || 0);
      }
    }
  }
  return total;
}

function usageOf(queue, field, resource) {
  // status.flavorsUsage[].resources[] = {name, total, borrowed}
  let total = 0;
  for (const flavor of queue.status.flavorsUsage || []) {
    for (const item of flavor.resources || []) if (item.name === resource) total += Number(item[field] ?? 0);
  }
  return total;
}

function spark(values, width = 120, height = 22) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height); svg.setAttribute("class", "spark");
  const max = Math.max(1, ...values);
  const points = values.map((v, i) => `${(i / Math.max(1, values.length - 1)) * width},${height - (v / max) * (height - 2) - 1}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" ")); line.setAttribute("fill", "none"); line.setAttribute("stroke", "#2f80ed");
  svg.append(line);
  return svg;
}

function renderCluster(doc) {
  const c = doc.cluster;
  document.getElementById("summary").textContent =
    `${c.nodes} node${c.nodes === 1 ? "" : "s"} · ${c.gpus} GPUs · ${c.gpusUsed} allocated (${pct(c.allocation)}) · ` +
    Object.entries(c.podPhases).map(([p, n]) => `${n} ${p}`).join(" · ");
  document.getElementById("alloc").textContent = `${pct(c.allocation)} allocated`;
  const grid = document.getElementById("gpu-grid");
  const nodes = doc.nodes.map((node) => {
    const devices = node.devices.map((device) => {
      const fill = el("span", { class: device.used < 0.999 ? "fill partial" : "fill", style: `height:${Math.round(device.used * 100)}%` });
      const title = `${node.name} GPU ${device.index} ${device.model || ""}${device.simulated ? " (simulated)" : ""}\n` +
        (device.pods.map(([key, share, phase, mig]) => `${key} ${mig ? "mig " + mig : (share < 1 ? share : "whole")} ${phase}`).join("\n") || "free");
      return el("span", { class: device.simulated ? "dev simulated" : "dev", title, "data-used": device.used }, fill);
    });
    return el("div", { class: node.ready === "True" ? "node" : "node notready", "data-node": node.name },
      el("div", { class: "name", title: `${node.name} ${node.product} ready=${node.ready}` }, node.name),
      el("div", { class: "devs" }, ...devices));
  });
  grid.replaceChildren(...nodes);
}

function renderQueues(doc) {
  fillRows("queue-table", doc.queues.map((queue) => {
    const quota = quotaOf(queue, "nvidia.com/gpu");
    const used = usageOf(queue, "total", "nvidia.com/gpu");
    const borrowed = usageOf(queue, "borrowed", "nvidia.com/gpu");
    const scale = Math.max(quota, used, 1);
    const bar = el("span", { class: "bar", title: `${used} used of ${quota} quota, ${borrowed} borrowed` },
      el("span", { class: "used", style: `width:${(100 * Math.min(used, quota)) / scale}%` }),
      el("span", { class: "borrowed", style: `left:${(100 * Math.min(used, quota)) / scale}%;width:${(100 * borrowed) / scale}%` }));
    return el("tr", { "data-queue": queue.name }, el("td", {}, queue.name), el("td", {}, queue.cohort),
      el("td", {}, bar, ` ${used} / ${quota}`), el("td", {}, borrowed),
      el("td", {}, queue.status.fairSharing ? Number(queue.status.fairSharing.weightedShare).toFixed(3) : ""),
      el("td", {}, queue.status.pending ?? 0),
      el("td", {}, queue.status.admitted ?? 0));
  }));
  fillRows("pending-table", doc.pending.map((item) => el("tr", { class: "pending" },
    el("td", {}, `${item.kind} ${item.key}`), el("td", {}, item.queue), el("td", {}, item.reason), el("td", {}, item.message))));
}

function renderWorkloads(doc) {
  fillRows("training-table", doc.trainingJobs.map((job) => el("tr", {},
    el("td", {}, `${job.namespace}/${job.name}`), el("td", {}, job.phase || "Pending"),
    el("td", {}, job.worldSize ?? job.spec.replicas ?? `${job.spec.minReplicas}-${job.spec.maxReplicas}`),
    el("td", {}, job.restarts ?? 0),
    el("td", {}, (job.replicas || []).map((r) => `rank ${r.index}: ${r.phase}${r.node ? " on " + r.node : ""}`).join(", ")))));
  fillRows("inference-table", doc.inferenceServices.map((service) => {
    const key = `${service.namespace}/${service.name}`;
    const series = (state.history[key] = (state.history[key] || []).concat([Number(service.readyReplicas || 0)]).slice(-120));
    const traffic = (service.traffic || []).map((t) => `${t.revision}${t.tag ? " (" + t.tag + ")" : ""}: ${t.percent}%`).join(", ") +
      (service.rolledBack ? ` — rolled back: ${service.rolledBack.reason}` : "");
    return el("tr", {}, el("td", {}, key), el("td", {}, service.url || ""),
      el("td", {}, spark(series), ` ${service.readyReplicas ?? 0}`), el("td", {}, traffic),
      el("td", {}, service.trafficStats ? service.trafficStats.requestsPerSecond : ""),
      el("td", {}, service.trafficStats?.meanLatencyMs != null ? `${service.trafficStats.meanLatencyMs} ms` : ""),
      el("td", {}, service.autoscalerReason ?? ""));
  }));
}

function renderEvents() {
  fillRows("event-table", state.events.slice(0, 200).map((e) => el("tr", {},
    el("td", {}, e.time || ""), el("td", { class: e.type }, e.type), el("td", {}, e.reason), el("td", {}, e.object),
    el("td", {}, e.message))));
}

async function refresh() {
  try {
    const doc = await (await api("/dashboard/api/state")).json();
    renderCluster(doc); renderQueues(doc); renderWorkloads(doc);
    if (!state.eventsRV) { state.events = doc.events; renderEvents(); }
    showError("");
  } catch (error) {
    if (error.message !== "unauthorized") showError(String(error));
  }
}

async function watchEvents() {
  for (;;) {
    try {
      const list = await (await api("/api/v1/events?limit=1")).json();
      state.eventsRV = list.metadata.resourceVersion;
      const response = await api(`/api/v1/events?watch=true&resourceVersion=${state.eventsRV}`);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline); buffer = buffer.slice(newline + 1);
          if (!line.trim()) continue;
          const event = JSON.parse(line);
          if (event.type === "ADDED" || event.type === "MODIFIED") {
            const e = event.object;
            state.events.unshift({ time: e.lastTimestamp || e.eventTime, type: e.type, reason: e.reason, message: e.message,
              object: `${e.involvedObject?.kind}/${e.involvedObject?.name}`, count: e.count });
            state.events.length = Math.min(state.events.length, 500);
            renderEvents();
          }
        }
      }
    } catch (error) {
      if (error.message === "unauthorized") return;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function start() {
  state.token = readToken();
  for (const link of document.querySelectorAll("nav a")) link.addEventListener("click", () => setTab(link.dataset.tab));
  if (location.hash.length > 1 && !location.hash.includes("token=")) setTab(location.hash.slice(1));
  document.getElementById("token-save").addEventListener("click", () => {
    sessionStorage.setItem("corral-token", document.getElementById("token-input").value.trim());
    location.reload();
  });
  if (!state.token) { showLogin(); return; }
  refresh(); setInterval(refresh, 2000); watchEvents();
}

start();

// moat console: draws what the one event stream (/events) says. Plain
// JavaScript and SVG; no library, no build step, nothing fetched from
// elsewhere. Changes are same-origin JSON POSTs carrying the per-start
// token, which comes in the URL's fragment (#token=...) and never leaves
// the browser otherwise.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const state = {
  snap: null,        // the latest snapshot
  selected: null,    // the selected node's name
  ghosts: new Map(), // name -> {node, until}: instances gone, fading out
  seen: new Set(),   // instance names drawn before (new ones fade in)
  metrics: [],       // the last seconds of metrics samples
  loadedAt: Date.now(),
};
// Event -> DOM latencies (ms) of live events, for the browser test.
window.moatLatencies = [];

function $(id) { return document.getElementById(id); }

// el builds an HTML element; children are nodes or strings (text, never markup).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "dataset") for (const [dk, dv] of Object.entries(v)) e.setAttribute("data-" + dk, dv);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function text(x, y, s, cls) { return svg("text", { x, y, class: "lbl " + (cls || "") }, String(s)); }

function notice(msg, bad) {
  const n = $("notice");
  n.textContent = msg;
  n.className = bad ? "err" : "";
}

// ---- the stream ----

function connect() {
  const es = new EventSource("/events");
  es.onopen = () => { $("conn").textContent = "live"; $("conn").className = "pill ok"; };
  es.onerror = () => { $("conn").textContent = "reconnecting"; $("conn").className = "pill warn"; };
  es.addEventListener("reset", () => { $("timeline").replaceChildren(); state.metrics = []; });
  es.addEventListener("snapshot", timed(onSnapshot));
  es.addEventListener("event", timed(onEvent));
  es.addEventListener("metrics", timed(onMetrics));
}

// The longest the page spent drawing one message (ms), for the browser
// test of a large stack.
window.moatRenderMs = 0;
function timed(f) {
  return (m) => {
    const t0 = performance.now();
    f(JSON.parse(m.data));
    window.moatRenderMs = Math.max(window.moatRenderMs, performance.now() - t0);
  };
}

function onSnapshot(s) {
  state.snap = s;
  $("stack").textContent = s.map.stack;
  const ph = s.status.phase || "unknown";
  $("phase").textContent = ph;
  $("phase").className = "pill " + (ph === "running" ? "ok" : ph === "failed" ? "bad" : "warn");
  drawMap();
  drawTargets();
  drawGroups();
  fillReachChoices();
  drawDetail();
  drawRoutes();
}

// ---- the map ----

const W = 170, H = 50, GAP = 10, PAD = 10, HEAD = 30;

function drawMap() {
  const m = state.snap.map;
  const now = Date.now();
  const nodes = m.nodes.slice();
  const present = new Set(nodes.map((n) => n.name));
  // Instances that left fade out where they were.
  for (const [name, g] of state.ghosts) {
    if (present.has(name) || g.until < now) state.ghosts.delete(name);
    else nodes.push(Object.assign({}, g.node, { gone: true }));
  }
  if (state.prevNodes) {
    for (const n of state.prevNodes) {
      if (n.kind === "instance" && !present.has(n.name) && !state.ghosts.has(n.name)) {
        state.ghosts.set(n.name, { node: n, until: now + 3000 });
        nodes.push(Object.assign({}, n, { gone: true }));
        setTimeout(() => state.snap && drawMap(), 3100);
      }
    }
  }
  state.prevNodes = m.nodes;

  const zones = m.zones.length ? m.zones : [{ name: "" }];
  const wrapW = Math.max($("map-wrap").clientWidth - 4, 600);
  // Redraw only when what the map shows changed (a click on a node is
  // then never lost to a redraw); traffic is drawn in place.
  const key = JSON.stringify([m, [...state.ghosts.keys()], state.selected, state.reach || null,
    state.exposed ? [...state.exposed] : null, wrapW], (k, v) => (k === "checks" ? undefined : v));
  if (same($("map"), key)) return;
  const laneW = Math.max(W + 2 * PAD + 20, Math.floor((wrapW - 40) / zones.length) - 10);
  const cols = Math.max(1, Math.floor((laneW - 2 * PAD - 20 + GAP) / (W + GAP)));
  const inSubnet = new Map();
  for (const n of nodes) {
    if (!n.subnet) continue;
    if (!inSubnet.has(n.subnet)) inSubnet.set(n.subnet, []);
    inSubnet.get(n.subnet).push(n);
  }
  // Tiers: the i-th subnet of every zone (public first) share a row.
  const byZone = zones.map((z) => m.subnets.filter((s) => s.zone === z.name).sort((a, b) => (b.public - a.public)));
  const tiers = Math.max(0, ...byZone.map((l) => l.length));
  const tierH = [];
  for (let t = 0; t < tiers; t++) {
    let h = HEAD + H + PAD;
    for (const l of byZone) {
      if (!l[t]) continue;
      const k = (inSubnet.get(l[t].name) || []).length;
      h = Math.max(h, HEAD + Math.ceil(Math.max(k, 1) / cols) * (H + GAP) + PAD);
    }
    tierH.push(h);
  }
  const top = 110, vpcX = 10;
  const vpcW = zones.length * (laneW + 10) + 10;
  const vpcH = 30 + tierH.reduce((a, b) => a + b + 12, 0) + 10;
  const root = svg("g", {});
  const edgesG = svg("g", { class: "edges" });
  const nodesG = svg("g", { class: "nodes" });
  root.append(svg("rect", { class: "vpc", x: vpcX, y: top, width: vpcW, height: vpcH, rx: 4 }),
    text(vpcX + 8, top + 16, "VPC " + m.vpc, "title"));
  const pos = new Map(); // node or subnet name -> centre {x, y}
  zones.forEach((z, zi) => {
    const zx = vpcX + 10 + zi * (laneW + 10);
    root.append(svg("rect", { class: "zone", x: zx, y: top + 24, width: laneW, height: vpcH - 30, rx: 4 }),
      text(zx + 6, top + 38, "Availability Zone " + (z.awsName || z.name), "small"));
    let y = top + 44;
    byZone[zi].forEach((s, t) => {
      const h = tierH[t];
      const sx = zx + 8, sw = laneW - 16;
      const g = svg("g", { class: "subnet-g", dataset: { subnet: s.name, zone: s.zone } },
        svg("rect", { class: "subnet " + (s.public ? "public" : "private"), x: sx, y, width: sw, height: h, rx: 3 }),
        text(sx + 6, y + 14, (s.public ? "Public subnet " : "Private subnet ") + s.name, "title"),
        text(sx + 6, y + 26, s.cidr + "  route table " + s.routeTable + (s.networkAcl ? "  NACL " + s.networkAcl : ""), "small"));
      root.append(g);
      // A subnet's own edges (to its NAT gateway) leave from its top edge.
      pos.set(s.name, { x: sx + sw * 0.8, y: y + 2 });
      (inSubnet.get(s.name) || []).forEach((n, i) => {
        const nx = sx + PAD + (i % cols) * (W + GAP), ny = y + HEAD + Math.floor(i / cols) * (H + GAP);
        pos.set(n.name, { x: nx + W / 2, y: ny + H / 2 });
        nodesG.append(drawNode(n, nx, ny));
      });
      y += h + 12;
    });
  });
  // Outside the VPC: the internet, and the internet gateway on its edge.
  const cx = vpcX + vpcW / 2 - W / 2;
  for (const n of nodes) {
    if (n.kind === "internet") { pos.set(n.name, { x: cx + W / 2, y: 10 + H / 2 }); nodesG.append(drawNode(n, cx, 10)); }
    if (n.kind === "igw") { pos.set(n.name, { x: cx + W / 2, y: top - 20 + H / 2 }); nodesG.append(drawNode(n, cx, top - 20)); }
  }
  const labelsG = svg("g", { class: "edge-labels" });
  m.edges.forEach((e, i) => {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) return;
    const failing = e.kind === "target" && targetState(e.to, e.targetGroup) === "unhealthy";
    const id = "e" + i;
    edgesG.append(svg("line", { class: "edge " + e.kind + (failing ? " failing" : ""), x1: a.x, y1: a.y, x2: b.x, y2: b.y,
      dataset: { id, from: e.from, to: e.to, kind: e.kind, tg: e.targetGroup || "" } }));
    if (["target", "internet", "egress"].includes(e.kind) || (e.kind === "ingress" && e.to === "bastion")) {
      // Traffic labels sit a little before the middle of the edge.
      labelsG.append(svg("text", { class: "edge-lbl", x: a.x + (b.x - a.x) * 0.45 + 5, y: a.y + (b.y - a.y) * 0.45, dataset: { for: id } }));
    }
  });
  root.append(edgesG, nodesG, labelsG);
  const map = $("map");
  map.setAttribute("width", vpcX + vpcW + 10);
  map.setAttribute("height", top + vpcH + 10);
  map.replaceChildren(root);
  applyTraffic();
}

function targetState(id, tg) {
  const t = state.snap.targets.find((t) => t.id === id && t.targetGroup === tg);
  return t ? t.state : "";
}

// health is an instance's worst target state (unhealthy > draining >
// initial > healthy), or "" without target groups.
function health(n) {
  const order = ["unhealthy", "draining", "initial", "unused", "healthy"];
  let best = "";
  for (const t of n.targets || []) {
    if (best === "" || order.indexOf(t.state) < order.indexOf(best)) best = t.state;
  }
  return best;
}

function drawNode(n, x, y) {
  const cls = ["node", n.kind];
  const data = { name: n.name, kind: n.kind };
  const lines = [];
  if (n.subnet) { data.subnet = n.subnet; data.zone = n.zone; }
  if (n.instance) {
    const h = health(n);
    cls.push("s-" + n.instance.state);
    if (h) cls.push("h-" + h);
    data.state = n.instance.state;
    data.health = h;
    data.ip = n.addr;
    data.group = n.owner;
    lines.push(n.name, n.addr + " · " + n.instance.state + (h ? " · " + h : ""),
      "sg " + (n.groups || []).join(", ") + (n.instance.protectedFromScaleIn ? " · protected" : ""));
  } else {
    lines.push(n.label, n.addr || "", (n.groups && n.groups.length) ? "sg " + n.groups.join(", ") : "");
  }
  if (n.gone) cls.push("gone");
  else if (n.kind === "instance" && !state.seen.has(n.name)) { cls.push("new"); state.seen.add(n.name); }
  if (n.name === state.selected) cls.push("selected");
  if (state.reach && n.name === state.reach.from) cls.push("reach-from");
  if (state.reach && n.name === state.reach.to) cls.push("reach-to");
  if (n.gone) data.gone = "true";
  const g = svg("g", { class: cls.join(" "), transform: `translate(${x},${y})`, dataset: data },
    svg("title", {}, n.label + (n.addr ? " " + n.addr : "")),
    svg("rect", { width: W, height: H }),
    text(6, 14, lines[0], "title"), text(6, 28, lines[1], "small"), text(6, 42, lines[2], "small"));
  if (n.instance) g.append(svg("text", { class: "lbl small cpu", x: W - 5, y: 42, "text-anchor": "end" }));
  if (state.exposed && state.exposed.has(n.name)) g.classList.add("exposed");
  g.addEventListener("click", () => { state.selected = n.gone ? null : n.name; drawMap(); drawDetail(); });
  return g;
}

// ---- the selected node ----

// same reports whether box already shows what key stands for, and
// remembers key: a panel is redrawn only when what it shows changed, so a
// click on one of its buttons is never lost to a redraw.
const drawn = new WeakMap(); // element -> the key of what it shows
function same(box, key) {
  if (drawn.get(box) === key) return true;
  drawn.set(box, key);
  return false;
}

function drawDetail() {
  const box = $("node-detail");
  const n = state.snap && state.snap.map.nodes.find((x) => x.name === state.selected);
  // (its targets' last checks are not shown here: they change often)
  if (same(box, JSON.stringify(n || null, (k, v) => (k === "checks" ? undefined : v)))) return;
  if (!n) { box.replaceChildren(el("p", { class: "muted" }, "Select a node on the map for its details and actions.")); return; }
  const rows = [["Name", n.name], ["Kind", n.label], ["Subnet", n.subnet || "-"], ["Zone", n.zone || "-"],
    ["Private IP", n.addr || "-"], ["Security groups", (n.groups || []).join(", ") || "-"]];
  if (n.instance) {
    const i = n.instance;
    rows.push(["Auto Scaling group", i.group], ["State", i.state + (i.stateReason ? " (" + i.stateReason + ")" : "")],
      ["Lifecycle", i.lifecycle || "-"], ["Launch template", i.launchTemplate + " " + i.version],
      ["Scale-in protection", i.protectedFromScaleIn ? "on" : "off"]);
    for (const t of n.targets || []) rows.push(["Target group " + t.targetGroup, t.state + (t.reason ? " " + t.reason : "")]);
  }
  const parts = [el("table", { id: "detail-table" }, rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, String(v)))))];
  const actions = el("div", { class: "actions" },
    el("button", { type: "button", onclick: () => pickReach("reach-from", n.name) }, "Reach from here"),
    el("button", { type: "button", onclick: () => pickReach("reach-to", n.name) }, "Reach to here"));
  if (n.instance) {
    actions.append(
      el("button", { type: "button", class: "primary", id: "terminate", disabled: !token || undefined,
        onclick: () => act("/api/terminate", { id: n.name, decrementDesired: false }, "terminate " + n.name) }, "Terminate instance"),
      el("button", { type: "button", id: "terminate-decrement", disabled: !token || undefined,
        onclick: () => act("/api/terminate", { id: n.name, decrementDesired: true }, "terminate " + n.name + " and decrement desired capacity") },
      "Terminate, decrement desired"),
      el("button", { type: "button", id: "protect", disabled: !token || undefined,
        onclick: () => act("/api/protect", { id: n.name, protectedFromScaleIn: !n.instance.protectedFromScaleIn },
          (n.instance.protectedFromScaleIn ? "remove the scale-in protection of " : "protect from scale-in ") + n.name) },
      n.instance.protectedFromScaleIn ? "Remove scale-in protection" : "Protect from scale-in"));
  }
  parts.push(actions);
  box.replaceChildren(...parts);
}

function pickReach(sel, name) { $(sel).value = name; }

// ---- target health ----

function drawTargets() {
  const body = $("targets").tBodies[0];
  body.replaceChildren(...state.snap.targets.map((t) => el("tr", { dataset: { target: t.id, targetGroup: t.targetGroup, state: t.state } },
    el("td", {}, t.targetGroup), el("td", {}, t.id), el("td", {}, t.address),
    el("td", { class: "state-" + t.state }, t.state), el("td", {}, t.reason || ""), el("td", {}, t.description || ""),
    el("td", { class: "checks" }, (t.checks || []).map((c) => el("span", {
      class: "check " + (c.ok ? "pass" : "fail"), dataset: { ok: String(c.ok), latency: String(c.latencyMs) },
      title: new Date(c.time).toLocaleTimeString() + (c.ok ? " passed" : " " + c.reason + ": " + (c.detail || "")),
    }, (c.ok ? "✓ " : "✗ ") + (c.latencyMs < 10 ? c.latencyMs.toFixed(1) : c.latencyMs.toFixed(0)) + " ms"))))));
}

// ---- auto scaling ----

function drawGroups() {
  const box = $("groups");
  if (same(box, JSON.stringify([state.snap.status.groups, state.snap.activities]))) return;
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.group : null;
  const typed = focused ? document.activeElement.value : null;
  box.replaceChildren(...(state.snap.status.groups || []).map((g) => {
    const input = el("input", { type: "number", min: g.min, max: g.max, value: g.desired, dataset: { group: g.name }, id: "desired-" + g.name });
    const acts = state.snap.activities[g.name] || [];
    return el("div", { class: "group", dataset: { group: g.name } },
      el("strong", {}, g.name), " ",
      el("span", { class: "counts", dataset: { desired: g.desired, min: g.min, max: g.max, inService: g.inService } },
        `desired ${g.desired} · min ${g.min} · max ${g.max} · in service ${g.inService} · healthy ${g.healthy}`),
      el("div", { class: "controls" },
        el("label", {}, "Desired capacity ", input),
        el("button", { type: "button", class: "primary", id: "set-desired-" + g.name, disabled: !token || undefined,
          onclick: () => act("/api/scale", { group: g.name, desired: Number(input.value) }, `set desired capacity of ${g.name} to ${input.value}`) }, "Set desired capacity"),
        el("button", { type: "button", id: "refresh-" + g.name, disabled: !token || undefined,
          onclick: () => act("/api/refresh", { group: g.name }, "start an instance refresh of " + g.name) }, "Start instance refresh")),
      el("table", { class: "activities" },
        el("thead", {}, el("tr", {}, el("th", {}, "Status"), el("th", {}, "Description"), el("th", {}, "Cause"), el("th", {}, "Start time"))),
        el("tbody", {}, acts.map((a) => el("tr", {}, el("td", {}, a.status), el("td", {}, a.description), el("td", {}, a.cause || ""),
          el("td", {}, new Date(a.time).toLocaleTimeString()))))));
  }));
  if (focused) {
    const again = document.querySelector(`input[data-group="${CSS.escape(focused)}"]`);
    if (again) { again.value = typed; again.focus(); }
  }
}

// ---- route tables (on demand) ----

function drawRoutes() {
  const box = $("routes");
  box.hidden = !$("show-routes").checked;
  if (box.hidden) return;
  box.replaceChildren(...state.snap.map.routeTables.map((rt) => el("table", {},
    el("caption", {}, "Route table " + rt.name + " (" + rt.subnets.join(", ") + ")"),
    el("tr", {}, el("th", {}, "Destination"), el("th", {}, "Target")),
    rt.routes.map((r) => el("tr", {}, el("td", {}, r.destination), el("td", {}, r.target + (r.nat ? " " + r.nat : "")))))));
}

// ---- changes ----

async function act(path, body, what) {
  if (!token) { notice("read-only: open the URL moat console prints to make changes", true); return; }
  notice("asking to " + what + " …");
  try {
    const resp = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json", "X-Moat-Token": token },
      body: JSON.stringify(body) });
    const out = await resp.json();
    if (!resp.ok) { notice(what + ": " + out.error, true); return; }
    notice("accepted: " + what);
  } catch (err) {
    notice(what + ": " + err, true);
  }
}

// ---- reachability ----

function fillReachChoices() {
  const names = state.snap.map.nodes.filter((n) => n.kind !== "igw" && n.kind !== "nat").map((n) => [n.name, n.kind === "internet" ? "internet" : n.name + " (" + (n.addr || "") + ")"]);
  for (const id of ["reach-from", "reach-to"]) {
    const sel = $(id);
    const keep = sel.value;
    const want = names.map((n) => n[0]).join("\n");
    if (sel.dataset.names === want) continue;
    sel.dataset.names = want;
    sel.replaceChildren(...names.map(([v, l]) => el("option", { value: v }, l)));
    if (names.some((n) => n[0] === keep)) sel.value = keep;
  }
}

async function reach(ev) {
  ev.preventDefault();
  const q = new URLSearchParams({ from: $("reach-from").value, to: $("reach-to").value, port: $("reach-port").value, proto: $("reach-proto").value });
  const box = $("reach-result");
  box.replaceChildren(el("p", { class: "muted" }, "analyzing…"));
  state.reach = { from: $("reach-from").value, to: $("reach-to").value };
  const resp = await fetch("/api/reach?" + q);
  const v = await resp.json();
  if (!resp.ok) { box.replaceChildren(el("p", { class: "verdict denied" }, v.error)); return; }
  const rows = [["Route", v.route || "-"]];
  for (const n of v.networkAcls || []) rows.push(["Network ACL", n]);
  if (v.egress) rows.push(["Egress", v.egress]);
  if (v.ingress) rows.push(["Ingress", v.ingress]);
  (v.blockers || []).forEach((b, i) => {
    rows.push([`Blocker ${i + 1}/${v.blockers.length}`, b.message + (b.code ? " [" + b.code + "]" : "")]);
    if (b.fix) rows.push(["Fix", b.fix]);
  });
  if (!v.allowed && !(v.blockers || []).length) { rows.push(["Why", v.reason]); if (v.fix) rows.push(["Fix", v.fix]); }
  box.replaceChildren(
    el("p", { class: "verdict " + (v.allowed ? "allowed" : "denied"), dataset: { allowed: String(v.allowed) } },
      (v.allowed ? "ALLOWED  " : "DENIED  ") + v.from + " → " + v.to + " " + $("reach-proto").value + "/" + $("reach-port").value),
    el("dl", {}, rows.map(([k, x]) => [el("dt", {}, k), el("dd", {}, x)])));
  drawMap();
}

// ---- the timeline ----

function onEvent(e) {
  const list = $("timeline");
  const t = new Date(e.time);
  const li = el("li", { class: "t-" + e.component + " ty-" + e.type.replace(/[^a-z0-9-]/gi, "-"), dataset: { type: e.type, component: e.component } },
    el("time", { datetime: e.time }, t.toLocaleTimeString()), el("span", { class: "comp" }, e.component), el("span", { class: "msg" }, e.message));
  const live = t.getTime() >= state.loadedAt;
  if (live) li.classList.add("fresh");
  list.prepend(li);
  while (list.childElementCount > 500) list.lastElementChild.remove();
  if (live) window.moatLatencies.push(Date.now() - t.getTime());
}

// ---- metrics: traffic on the map, and the charts ----

function onMetrics(sample) {
  state.metrics.push(sample);
  if (state.metrics.length > 120) state.metrics.shift();
  applyTraffic();
  drawMetrics();
}

function fmtBytes(n) {
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + " GiB";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + " KiB";
  return n + " B";
}

// applyTraffic draws the last second on the map: each target edge as
// thick as its request rate, red when it answered 5XX; the internet's
// requests, SSH sessions through the bastion, NAT egress; each
// instance's CPU.
function applyTraffic() {
  const s = state.metrics[state.metrics.length - 1];
  if (!s) return;
  const byTarget = new Map();
  let rps = 0, conns = 0;
  for (const lb of s.loadBalancers || []) {
    rps += lb.RequestCount; conns += lb.ActiveConnectionCount;
    for (const t of lb.targets || []) byTarget.set(t.targetGroup + "/" + t.id, t);
  }
  const label = (line, txt) => {
    const l = document.querySelector(`#map text.edge-lbl[data-for="${line.dataset.id}"]`);
    if (l) l.textContent = txt;
  };
  for (const line of document.querySelectorAll("#map line.edge")) {
    const k = line.dataset.kind;
    if (k === "target") {
      const t = byTarget.get(line.dataset.tg + "/" + line.dataset.to);
      const r = t ? t.RequestCount : 0, errs = t ? t.Errors5XX : 0;
      line.style.strokeWidth = (1.5 + Math.log2(1 + r) * 1.3).toFixed(1);
      line.classList.toggle("erroring", errs > 0);
      line.dataset.rps = r;
      line.dataset.errors = errs;
      label(line, r || errs ? r + " req/s" + (errs ? " · " + errs + " 5xx" : "") : "");
    } else if (k === "internet") {
      line.style.strokeWidth = (1.5 + Math.log2(1 + rps) * 1.3).toFixed(1);
      label(line, rps + " req/s · " + conns + " conn");
    } else if (k === "ingress" && line.dataset.to === "bastion") {
      const n = (s.bastion || {}).ActiveSessions || 0;
      line.dataset.sessions = n;
      label(line, n ? n + " SSH" : "");
    } else if (k === "egress") {
      const nat = (s.nat || []).find((x) => x.name === line.dataset.from);
      label(line, nat ? fmtBytes(nat.BytesOutToDestination) + "/s" : "");
    }
  }
  for (const i of s.instances || []) {
    const t = document.querySelector(`#map .node[data-name="${CSS.escape(i.id)}"] text.cpu`);
    if (t) t.textContent = "CPU " + i.CPUUtilization.toFixed(0) + "%";
  }
}

// spark is a small chart of series (each {name, values}) over the last
// seconds, with the latest value of each.
function spark(metric, series, unit, small) {
  const w = small ? 120 : 260, h = small ? 16 : 46;
  const max = Math.max(1e-9, ...series.flatMap((x) => x.values));
  const n = Math.max(...series.map((x) => x.values.length), 2);
  const chart = svg("svg", { width: w, height: h, class: "spark" },
    series.map((x, si) => svg("polyline", { class: "s" + si, fill: "none",
      points: x.values.map((v, i) => `${(w * (i + n - x.values.length) / (n - 1)).toFixed(1)},${(h - 2 - (h - 4) * v / max).toFixed(1)}`).join(" ") })));
  const legend = series.map((x, si) => {
    const v = x.values.length ? x.values[x.values.length - 1] : 0;
    return el("span", { class: "leg s" + si, dataset: { series: x.name, value: String(v) } }, x.name + " " + (Number.isInteger(v) ? v : v.toFixed(1)) + (unit || ""));
  });
  return el("div", { class: "chart", dataset: { metric } }, el("div", { class: "chart-title" }, metric), chart, el("div", { class: "legend" }, legend));
}

function drawMetrics() {
  const box = $("metrics");
  const ms = state.metrics;
  if (!ms.length) return;
  const last = ms[ms.length - 1];
  const parts = [];
  for (const lb of last.loadBalancers || []) {
    const of = (f) => ms.map((m) => { const x = (m.loadBalancers || []).find((l) => l.name === lb.name); return x ? f(x) : 0; });
    const hosts = (f) => of((x) => (x.targetGroups || []).reduce((a, g) => a + f(g), 0));
    parts.push(el("h3", {}, "Load balancer " + lb.name),
      el("div", { class: "charts" },
        spark("RequestCount", [{ name: "RequestCount", values: of((x) => x.RequestCount) }], "/s"),
        spark("HTTP codes", [
          { name: "Target_2XX", values: of((x) => x.HTTPCode_Target_2XX_Count) },
          { name: "Target_4XX", values: of((x) => x.HTTPCode_Target_4XX_Count) },
          { name: "Target_5XX", values: of((x) => x.HTTPCode_Target_5XX_Count) },
          { name: "ELB_4XX", values: of((x) => x.HTTPCode_ELB_4XX_Count) },
          { name: "ELB_5XX", values: of((x) => x.HTTPCode_ELB_5XX_Count) }]),
        spark("TargetResponseTime", [
          { name: "p50", values: of((x) => x.TargetResponseTimeP50 * 1000) },
          { name: "p99", values: of((x) => x.TargetResponseTimeP99 * 1000) }], " ms"),
        spark("ActiveConnectionCount", [{ name: "ActiveConnectionCount", values: of((x) => x.ActiveConnectionCount) }]),
        spark("Hosts", [{ name: "HealthyHostCount", values: hosts((g) => g.HealthyHostCount) },
          { name: "UnHealthyHostCount", values: hosts((g) => g.UnHealthyHostCount) }])));
  }
  const insts = last.instances || [];
  if (insts.length) {
    const cpu = (id) => ms.map((m) => { const x = (m.instances || []).find((i) => i.id === id); return x ? x.CPUUtilization : 0; });
    parts.push(el("h3", {}, "Instances"), el("table", { id: "instance-metrics" },
      el("tr", {}, el("th", {}, "Instance"), el("th", {}, "CPUUtilization"), el("th", {}, "Memory used / limit"), el("th", {}, "")),
      insts.map((i) => el("tr", { dataset: { instance: i.id, cpu: String(i.CPUUtilization) } }, el("td", {}, i.id),
        el("td", {}, i.CPUUtilization.toFixed(1) + " %"),
        el("td", {}, fmtBytes(i.MemoryUsedBytes) + (i.MemoryLimitBytes ? " / " + fmtBytes(i.MemoryLimitBytes) : "")),
        el("td", {}, spark("CPUUtilization " + i.id, [{ name: "cpu", values: cpu(i.id) }], " %", true))))));
  }
  const nat = (last.nat || []).map((n) => n.name + " " + fmtBytes(n.BytesOutToDestination) + "/s out");
  parts.push(el("p", { class: "muted", id: "other-metrics" }, "Bastion ActiveSessions " + ((last.bastion || {}).ActiveSessions || 0) +
    (nat.length ? " · NAT " + nat.join(", ") : "") + " · at " + new Date(last.time).toLocaleTimeString()));
  box.replaceChildren(...parts);
}

// ---- what the internet can reach ----

async function exposed() {
  const box = $("exposed-result");
  if (state.exposed) { state.exposed = null; box.replaceChildren(); drawMap(); return; }
  const resp = await fetch("/api/exposed");
  const list = await resp.json();
  if (!resp.ok) { box.replaceChildren(el("p", { class: "verdict denied" }, list.error)); return; }
  state.exposed = new Set(list.flatMap((e) => e.nodes));
  box.replaceChildren(el("table", { id: "exposed-table" },
    el("tr", {}, el("th", {}, "Target"), el("th", {}, "Ports"), el("th", {}, "From"), el("th", {}, "Listener"), el("th", {}, "Allowed by")),
    list.map((e) => el("tr", { dataset: { target: e.target } }, el("td", {}, e.target),
      el("td", {}, e.protocol + (e.fromPort !== undefined ? " " + (e.fromPort === e.toPort ? e.fromPort : e.fromPort + "-" + e.toPort) : "")),
      el("td", {}, e.from), el("td", {}, e.listener || ""), el("td", {}, (e.allowedBy || []).join("; "))))));
  drawMap();
}

function init() {
  $("mode").textContent = token ? "changes enabled" : "read-only";
  $("mode").className = "pill " + (token ? "ok" : "");
  $("reach-form").addEventListener("submit", reach);
  $("exposed-go").addEventListener("click", exposed);
  $("show-routes").addEventListener("change", () => state.snap && drawRoutes());
  window.addEventListener("resize", () => state.snap && drawMap());
  connect();
}

init();

// Stratus dashboard: polls /cluster.json every second (this node's statistics and each peer's,
// asked by the node), keeps the last 5 minutes in memory and draws one chart per metric with one
// series per replica. Plain JS, no build step; uPlot draws.
// Each card records what it draws in data- attributes (samples, x-min/x-max in seconds, y-min/
// y-max, y-scale): the browser test reads them.
"use strict";
(function () {
  const POLL_MS = 1000;
  const KEEP = 300; // points: 5 minutes at one per second
  const HEIGHT = 170; // px per chart
  const MIN_SPAN_S = 60; // the time axis shows at least the last minute, ending at the latest sample
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#843c39", "#7b4173", "#3182bd"];
  const color = (i) => COLORS[i % COLORS.length]; // replica colours: by node id

  // Message types keep one colour in every chart and every page load: the project's types
  // (types.Kind) by this table, any other name by a hash of the name into the same palette.
  // Consensus in blues, greens and reds; the mempool's data in orange, purple, brown and olive.
  const KIND_COLORS = {
    Block: "#1f77b4", Vote: "#2ca02c", Timeout: "#d62728", TC: "#843c39",
    BlockRequest: "#17becf", BlockResponse: "#393b79", TxForward: "#e377c2", MicroBlock: "#ff7f0e",
    Ack: "#9467bd", Proof: "#8c564b", FetchRequest: "#bcbd22", FetchResponse: "#637939",
    LBQuery: "#7b4173", LBInfo: "#8c6d31", LBForward: "#7f7f7f", StateRequest: "#ad494a",
    Snapshot: "#5254a3", ProofRequest: "#a55194",
  };
  const KIND_PALETTE = Object.values(KIND_COLORS);
  function kindColor(name) {
    if (Object.prototype.hasOwnProperty.call(KIND_COLORS, name)) return KIND_COLORS[name];
    let h = 0x811c9dc5; // FNV-1a of the name
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    return KIND_PALETTE[(h >>> 0) % KIND_PALETTE.length];
  }

  // A metric read from one replica's snapshot s; prev is that replica's previous snapshot and dt
  // the seconds between them (for rates of counters).
  const rate = (get) => (s, prev, dt) => (prev && dt > 0 ? Math.max(0, (get(s) - get(prev)) / dt) : null);
  const perReplica = [
    { id: "throughput", title: "Committed throughput", unit: "tx/s", get: (s) => s.throughput_tps },
    { id: "lat50", title: "Latency p50", unit: "ms (last 10 s)", get: (s) => s.latency_window_ms.p50 },
    { id: "lat99", title: "Latency p99", unit: "ms (last 10 s)", get: (s) => s.latency_window_ms.p99 },
    { id: "view", title: "View", unit: "", get: (s) => s.view },
    { id: "viewchanges", title: "View changes", unit: "per s", get: rate((s) => s.view_changes) },
    { id: "timeouts", title: "Timeouts", unit: "total", get: (s) => s.timeouts },
    { id: "send", title: "Bytes sent", unit: "Mbit/s, all message types", get: (s) => s.send_mbps },
    { id: "recv", title: "Bytes received", unit: "Mbit/s, all message types", get: (s) => s.recv_mbps },
    { id: "mempool", title: "Mempool", unit: "pending tx", get: (s) => s.mempool.pending_tx },
    { id: "microblocks", title: "Microblocks known", unit: "", get: (s) => s.microblocks.known },
    { id: "stable", title: "PAB stable time p50", unit: "ms", get: (s) => s.microblocks.stable_time_ms.p50 },
    { id: "load", title: "Load estimate", unit: "ms (stable-time percentile)", get: (s) => s.microblocks.load_ms },
    { id: "busy", title: "Busy (load balancing)", unit: "1 = forwarding", get: (s) => (s.microblocks.busy ? 1 : 0), steps: true },
    { id: "store", title: "Store on disk", unit: "MB (-data_dir)", get: (s) => (s.store ? s.store.bytes / 1e6 : 0) },
  ];
  // Charts with one series per message type, summed over the replicas that answer.
  const perKind = [
    // MicroBlock carries nearly all the bytes: a log scale (the default) keeps the small types readable.
    { id: "kindsent", title: "Bytes sent by message type", unit: "bytes/s, all replicas", field: "sent_bytes_per_s", legend: true, log: true },
    { id: "kindrecv", title: "Bytes received by message type", unit: "bytes/s, all replicas", field: "recv_bytes_per_s", legend: true, log: true },
  ];

  const times = [];
  const charts = new Map(); // id → {def, labels, colors, data: Map label → values, plot, el}
  const prevSnap = new Map(); // node → {s, t}
  const grid = document.getElementById("charts");
  let polls = 0;

  function card(def) {
    const el = document.createElement("div");
    el.className = "card";
    el.id = "chart-" + def.id;
    const h = document.createElement("h2");
    h.textContent = def.title + " ";
    const small = document.createElement("small");
    small.textContent = def.unit;
    h.appendChild(small);
    el.appendChild(h);
    let toggle = null;
    if (def.log !== undefined) {
      toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "scale";
      toggle.title = "y axis: logarithmic (small values readable) or linear";
      h.appendChild(toggle);
    }
    const box = document.createElement("div");
    el.appendChild(box);
    grid.appendChild(el);
    return { el, box, toggle };
  }

  function ensureChart(def) {
    let c = charts.get(def.id);
    if (!c) {
      const { el, box, toggle } = card(def);
      c = { def, labels: [], colors: [], data: new Map(), plot: null, el, box, log: !!def.log };
      charts.set(def.id, c);
      if (toggle) {
        const label = () => {
          toggle.textContent = c.log ? "log scale" : "linear scale";
          toggle.setAttribute("aria-pressed", String(c.log));
        };
        label();
        toggle.addEventListener("click", () => {
          c.log = !c.log;
          label();
          build(c);
        });
      }
    }
    return c;
  }

  function fmt(v) {
    if (v == null) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
    return v.toFixed(2);
  }

  const tick = (v) => fmt(v).replace(/\.0(?=[kMG]$)/, ""); // axis labels: 10k, not 10.0k
  const last = (arr) => (arr.length ? arr[arr.length - 1] : null);
  const pad2 = (n) => String(n).padStart(2, "0");
  function clock(t) {
    if (t == null) return "–";
    const d = new Date(t * 1000);
    return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds());
  }

  // timeSpan is the x range: from the oldest sample kept, or MIN_SPAN_S before the latest if that
  // is shorter, to the latest sample (now, with no sample yet). uPlot alone would stretch a single
  // sample's zero-width range over years.
  function timeSpan(u) {
    const xs = u.data[0] || [];
    const end = xs.length ? xs[xs.length - 1] : Date.now() / 1000;
    const start = xs.length ? Math.min(xs[0], end - MIN_SPAN_S) : end - MIN_SPAN_S;
    return [start, end];
  }

  // A log y axis is uPlot's asinh scale: logarithmic above 1, linear through 0, so the zero rates
  // of idle types sit on the axis instead of breaking the scale.
  const linearRange = (u, min, max) => [Math.min(0, min || 0), max > 0 ? max * 1.1 : 1];
  const logRange = (u, min, max) => uPlot.rangeAsinh(Math.min(0, min || 0), max > 1 ? max : 1, 10, true);
  // Its ticks and grid lines: 0 and powers of ten, every decade or every few so that labels stay
  // at least 22 px apart.
  function logSplits(u, ai, min, max) {
    const top = Math.max(0, Math.ceil(Math.log10(Math.max(max, 1))));
    const px = u.bbox.height > 0 ? u.bbox.height / uPlot.pxRatio : HEIGHT / 2;
    const step = Math.max(1, Math.ceil((top + 1) / Math.max(2, Math.floor(px / 22))));
    const out = [0];
    for (let e = top; e >= (top === 0 ? 0 : 1); e -= step) out.push(10 ** e);
    return out.sort((a, b) => a - b);
  }

  function record(c, u) {
    const d = c.el.dataset;
    d.samples = String(u.data[0].length);
    d.xMin = String(u.scales.x.min);
    d.xMax = String(u.scales.x.max);
    d.yMin = String(u.scales.y.min);
    d.yMax = String(u.scales.y.max);
    d.yScale = c.log ? "log" : "linear";
  }

  function build(c) {
    if (c.plot) c.plot.destroy();
    c.box.textContent = "";
    const width = Math.max(300, c.el.clientWidth - 20);
    // Away from the cursor the legend shows each series' latest value (uPlot asks with idx null).
    const series = [{ value: (u, v, si, idx) => clock(idx == null ? last(u.data[0]) : v) }].concat(c.labels.map((l, i) => ({
      label: l, stroke: c.colors[i], width: 1.5, spanGaps: false,
      paths: c.def.steps ? uPlot.paths.stepped({ align: 1 }) : undefined,
      points: { size: 6 }, // drawn while points are sparse: a lone first sample stays visible
      value: (u, v, si, idx) => fmt(idx == null ? last(u.data[si]) : v),
    })));
    const opts = {
      width, height: HEIGHT, series,
      scales: {
        x: { time: true, range: timeSpan },
        y: c.log ? { distr: 4, log: 10, asinh: 1, range: logRange } : { range: linearRange },
      },
      axes: [{ stroke: "#6b7482", grid: { stroke: "#eef0f3" } },
        Object.assign({ stroke: "#6b7482", grid: { stroke: "#eef0f3" }, size: 56, values: (u, vals) => vals.map(tick) },
          c.log ? { splits: logSplits, filter: (u, splits) => splits } : {})],
      // Per-replica charts take their colours from the table's swatches; per-kind charts name theirs.
      legend: { show: !!c.def.legend, live: true },
      cursor: { drag: { x: false, y: false } },
      hooks: { draw: [(u) => record(c, u)] },
    };
    c.plot = new uPlot(opts, columns(c), c.box);
  }

  function columns(c) {
    return [times.slice()].concat(c.labels.map((l) => c.data.get(l).slice()));
  }

  // push appends one point per label (null where a replica or kind has no value) and trims to KEEP.
  function push(c, values, order) {
    let changed = false;
    for (const [label, col] of order) {
      if (!c.data.has(label)) {
        c.data.set(label, new Array(times.length - 1).fill(null));
        c.labels.push(label);
        c.colors.push(col);
        changed = true;
      }
    }
    for (const l of c.labels) {
      const arr = c.data.get(l);
      arr.push(values.has(l) ? values.get(l) : null);
      if (arr.length > KEEP) arr.splice(0, arr.length - KEEP);
    }
    return changed;
  }

  function render(c, changed) {
    if (changed || !c.plot) build(c);
    else c.plot.setData(columns(c));
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function table(nodes) {
    const tb = document.querySelector("#replicas tbody");
    tb.textContent = "";
    for (const nd of nodes) {
      const s = nd.stats;
      const tr = document.createElement("tr");
      tr.id = "replica-" + nd.node;
      tr.className = nd.up ? "up" : "down";
      tr.dataset.up = nd.up ? "true" : "false";
      const first = cell(tr, "");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = color(nd.node - 1);
      first.appendChild(sw);
      first.appendChild(document.createTextNode(nd.node + (nd.self ? " (this node)" : "")));
      const st = cell(tr, nd.up ? "up" : "down", "status " + (nd.up ? "up" : "down"));
      if (!nd.up && nd.error) {
        const e = document.createElement("span");
        e.className = "err";
        e.textContent = nd.error;
        st.appendChild(e);
      }
      if (s) {
        [s.view, s.leader, s.committed_height, s.committed_tx].forEach((v) => cell(tr, String(v)));
        cell(tr, s.throughput_tps.toFixed(1));
        cell(tr, s.latency_window_ms.p50.toFixed(2));
        cell(tr, s.latency_window_ms.p99.toFixed(2));
        cell(tr, String(s.mempool.pending_tx));
        cell(tr, String(s.refused_submissions));
        const dup = cell(tr, (100 * (s.submitted_duplicate_share || 0)).toFixed(1), "dup");
        dup.title = s.submitted_duplicate_tx + " duplicates answered since start";
        const hr = s.http_refused;
        if (hr) {
          const busy = hr.bodies_in_flight || 0;
          const c = cell(tr, String(hr.body_too_large + hr.body_timeout + hr.header_timeout + hr.too_many_connections + busy));
          c.title = hr.body_too_large + " body too large, " + hr.body_timeout + " body timeout, " +
            hr.header_timeout + " header timeout, " + hr.too_many_connections + " too many connections, " +
            busy + " bodies in flight";
        } else {
          cell(tr, "–"); // a node that does not count them
        }
        const pr = s.peer_connections_refused || {};
        const pc = cell(tr, String(Object.values(pr).reduce((a, b) => a + b, 0)));
        pc.title = Object.keys(pr).sort().map((k) => pr[k] + " " + k).join(", ") || "none";
        cell(tr, String(s.microblocks.known));
        cell(tr, s.send_mbps.toFixed(2));
        cell(tr, s.recv_mbps.toFixed(2));
        cell(tr, s.microblocks.busy ? "yes" : "no");
        cell(tr, s.microblocks.load_ms.toFixed(2));
      } else {
        for (let i = 0; i < 17; i++) cell(tr, "–");
      }
      tb.appendChild(tr);
    }
  }

  function header(resp) {
    const self = resp.nodes.find((n) => n.self);
    const s = self && self.stats;
    if (s) {
      document.getElementById("protocol").textContent = s.algorithm + " (" + s.engine + ", " + s.mem_type + ")";
      const up = Math.round(s.uptime_s);
      document.getElementById("uptime").textContent =
        (up >= 3600 ? Math.floor(up / 3600) + "h " : "") + Math.floor((up % 3600) / 60) + "m " + (up % 60) + "s";
    }
    document.getElementById("n").textContent = String(resp.n);
    document.getElementById("self").textContent = String(resp.self);
    const up = resp.nodes.filter((n) => n.up).length;
    document.getElementById("upcount").textContent = up + " of " + resp.nodes.length;
  }

  function update(resp) {
    const t = Date.parse(resp.time) / 1000;
    times.push(t);
    if (times.length > KEEP) times.splice(0, times.length - KEEP);
    header(resp);
    table(resp.nodes);
    const order = resp.nodes.map((n) => ["node " + n.node, color(n.node - 1)]);
    for (const def of perReplica) {
      const values = new Map();
      for (const nd of resp.nodes) {
        if (!nd.up || !nd.stats) continue;
        const p = prevSnap.get(nd.node);
        let v = null;
        try { v = def.get(nd.stats, p && p.s, p ? t - p.t : 0); } catch (e) { v = null; }
        values.set("node " + nd.node, v == null || !isFinite(v) ? null : v);
      }
      const c = ensureChart(def);
      render(c, push(c, values, order));
    }
    for (const def of perKind) {
      const values = new Map();
      for (const nd of resp.nodes) {
        if (!nd.up || !nd.stats || !nd.stats.traffic) continue;
        for (const [kind, tr] of Object.entries(nd.stats.traffic)) {
          values.set(kind, (values.get(kind) || 0) + (tr[def.field] || 0));
        }
      }
      const c = ensureChart(def);
      const kinds = [...values.keys()].sort();
      render(c, push(c, values, kinds.map((k) => [k, kindColor(k)])));
    }
    for (const nd of resp.nodes) {
      if (nd.up && nd.stats) prevSnap.set(nd.node, { s: nd.stats, t });
      else prevSnap.delete(nd.node);
    }
    polls++;
    document.body.dataset.polls = String(polls);
  }

  const conn = document.getElementById("conn");
  async function poll() {
    try {
      const r = await fetch("cluster.json", { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      update(await r.json());
      conn.textContent = "live";
      conn.className = "conn ok";
    } catch (e) {
      conn.textContent = "this node does not answer (" + e.message + "); retrying";
      conn.className = "conn err";
    }
    setTimeout(poll, POLL_MS);
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const c of charts.values()) if (c.plot) c.plot.setSize({ width: Math.max(300, c.el.clientWidth - 20), height: HEIGHT });
    }, 150);
  });
  poll();
})();

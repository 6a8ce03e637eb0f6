/* The run page: charts of every metric, kept current while the run is live, and the log, followed. */
(function () {
  "use strict";
  const T = window.theseus;
  const page = T.pageData();
  const container = document.getElementById("charts");
  const logBox = document.getElementById("log");
  const POLL_MS = 2000;
  const LOG_KEEP = 400000;
  const RELOAD_ABOVE = 4000; // points in one series before the page asks for a fresh downsampled copy
  let data = {};
  let offset = 0;
  let logOffset = page.log_offset || 0;
  let axis = "step";
  let layout = "";
  let drawn = false;

  function groups() {
    const keys = Object.keys(data);
    const used = new Set();
    const out = [];
    for (const group of T.GROUPS) {
      const present = group.filter((k) => keys.includes(k));
      if (present.length) { out.push(present); present.forEach((k) => used.add(k)); }
    }
    keys.filter((k) => !used.has(k)).sort().forEach((k) => out.push([k]));
    return out;
  }

  function render() {
    const current = groups();
    const signature = JSON.stringify(current);
    if (signature !== layout) {
      layout = signature;
      container.replaceChildren();
      for (const key of Object.keys(T.charts)) delete T.charts[key];
      for (const group of current) {
        T.charts[group[0]] = new T.Chart(container, group[0], group.map(T.label).join(" · "), group.map(T.label));
      }
      if (!current.length) {
        const p = document.createElement("p");
        p.className = "empty";
        p.textContent = "No metrics yet.";
        container.appendChild(p);
      }
    }
    const anyTime = Object.values(data).some(T.hasTime);
    T.setTimeAvailable(anyTime);
    for (const group of current) T.charts[group[0]].draw(group.map((k) => data[k]), anyTime ? axis : "step");
  }

  function show(snap) {
    data = snap.series;
    const note = document.getElementById("points-note");
    if (note) {
      const n = snap.records ? snap.records.toLocaleString() + " records" : "";
      note.textContent = snap.partial ? n + " (a sample; reading the rest)" : n;
    }
    render();
    if (!drawn) {
      drawn = true;
      performance.mark("theseus:charts"); // the first charts on screen: the page's load time, as the tests measure it
    }
  }

  async function load() {
    const snap = await T.getMetrics(page.api, show);
    show(snap);
    offset = snap.offset;
    performance.mark("theseus:charts-exact");
    return snap;
  }

  function showState(state, step) {
    const badge = document.getElementById("run-state");
    if (badge && state && badge.textContent !== state) {
      badge.textContent = state;
      badge.className = "state " + state;
    }
    const stepBox = document.getElementById("run-step");
    if (stepBox && typeof step === "number") stepBox.textContent = step.toLocaleString();
  }

  async function pollMetrics() {
    const inc = await T.getJSON(page.api + "/metrics?since=" + offset);
    if (inc.reset) {
      await load();
    } else {
      offset = inc.offset;
      if (inc.records) {
        for (const [key, more] of Object.entries(inc.series)) {
          if (!data[key]) data[key] = T.emptySeries();
          T.append(data[key], more);
        }
        if (Object.values(data).some((s) => s.value.length > RELOAD_ABOVE)) await load();
        else render();
      }
    }
    showState(inc.state, inc.step);
    return inc.state;
  }

  async function pollLog() {
    if (!logBox) return;
    const chunk = await T.getJSON(page.api + "/log?since=" + logOffset);
    if (chunk.reset) {
      const tail = await T.getJSON(page.api + "/log");
      logBox.textContent = tail.text;
      logOffset = tail.offset;
      return;
    }
    logOffset = chunk.offset;
    if (!chunk.text) return;
    const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
    let text = logBox.textContent + chunk.text;
    if (text.length > LOG_KEEP) text = text.slice(text.indexOf("\n", text.length - LOG_KEEP) + 1);
    logBox.textContent = text;
    if (atBottom) logBox.scrollTop = logBox.scrollHeight;
  }

  async function tick() {
    let state = "running";
    try {
      state = await pollMetrics();
      await pollLog();
    } catch (err) {
      state = "running"; // the server restarted or the network blinked: try again
    }
    if (state === "running" || state === "queued") setTimeout(tick, POLL_MS);
  }

  T.axisToggle((x) => { axis = x; layout = ""; render(); });
  T.onResize(() => Object.values(T.charts));
  if (logBox) logBox.scrollTop = logBox.scrollHeight;
  load().then(() => { if (page.live) setTimeout(tick, POLL_MS); });
})();

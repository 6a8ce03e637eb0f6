/* Charts of run metrics with uPlot, in the colours of styles.css (read from its variables).
 *
 * A series is {step: [...], time: [...], value: [...]} as /api/.../metrics returns it.
 * A chart shows one or more series against step or wall time; series with different
 * x values are joined (uPlot.join) and drawn across the gaps.
 */
(function () {
  "use strict";

  const css = getComputedStyle(document.documentElement);
  const variable = (name) => css.getPropertyValue(name).trim();
  const PALETTE = ["--th-blue", "--th-orange", "--th-green", "--th-red", "--th-fg", "--th-muted"].map(variable);
  const LABELS = {
    loss: "loss", val_loss: "validation loss", lr: "learning rate", grad_norm: "gradient norm",
    tokens_per_s: "tokens / s", mfu: "MFU",
  };
  // the run page's charts: loss with validation loss, then one chart per other metric
  const GROUPS = [["loss", "val_loss"], ["lr"], ["grad_norm"], ["tokens_per_s"], ["mfu"]];

  function format(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "-";
    const a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a < 1e-2) return v.toExponential(1);
    return String(Number(v.toPrecision(4)));
  }

  function label(key) {
    return LABELS[key] || key;
  }

  function pageData() {
    const node = document.getElementById("page-data");
    return node ? JSON.parse(node.textContent) : {};
  }

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    return response.json();
  }

  /** The metrics of a run; while the server is still parsing a large file it answers with a
   * sample marked `partial`: show that, then ask again until the exact series arrive. */
  async function getMetrics(api, onSample) {
    let snap = await getJSON(api + "/metrics");
    while (snap.partial) {
      if (onSample) onSample(snap);
      await new Promise((resolve) => setTimeout(resolve, 250));
      snap = await getJSON(api + "/metrics");
    }
    return snap;
  }

  function emptySeries() {
    return { step: [], time: [], value: [] };
  }

  function append(into, more) {
    into.step.push(...more.step);
    into.time.push(...(more.time.length ? more.time : more.step.map(() => null)));
    into.value.push(...more.value);
  }

  function hasTime(series) {
    return series.time.length > 0 && series.time.some((t) => t !== null);
  }

  function pairs(list, axis) {
    // [[x...], [y...]] per series, x ascending, points without an x value dropped
    return list.map((s) => {
      const xs = [], ys = [];
      const source = axis === "time" ? s.time : s.step;
      for (let i = 0; i < s.value.length; i++) {
        if (source[i] !== null && source[i] !== undefined) { xs.push(source[i]); ys.push(s.value[i]); }
      }
      return [xs, ys];
    });
  }

  function axisStyle() {
    const fg = variable("--th-muted");
    const grid = variable("--th-line");
    return {
      stroke: fg, font: "11px " + variable("--th-sans"),
      grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 },
    };
  }

  /** One chart: a titled box holding a uPlot instance over named series. */
  class Chart {
    constructor(container, key, title, names) {
      this.key = key;
      this.names = names;
      this.box = document.createElement("div");
      this.box.className = "chart";
      this.box.dataset.key = key;
      const h = document.createElement("h3");
      h.textContent = title;
      this.box.appendChild(h);
      container.appendChild(this.box);
      this.plot = null;
      this.axis = "step";
      this.points = 0;
    }

    width() {
      return Math.max(280, this.box.clientWidth - 16);
    }

    draw(list, axis) {
      // list: one series object per name (may be empty)
      const joined = uPlot.join(pairs(list, axis));
      this.points = list.reduce((n, s) => n + s.value.filter((v) => v !== null).length, 0);
      this.box.dataset.points = String(this.points);
      if (this.plot && this.axis === axis) {
        this.plot.setData(joined);
        return;
      }
      if (this.plot) this.plot.destroy();
      this.axis = axis;
      const style = axisStyle();
      const series = [{ label: axis === "time" ? "time" : "step" }].concat(
        this.names.map((name, i) => ({
          label: name, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true,
          points: { show: false }, value: (u, v) => format(v),
        }))
      );
      this.plot = new uPlot({
        width: this.width(), height: 210, series: series,
        scales: { x: { time: axis === "time" } },
        axes: [
          Object.assign({}, style),
          Object.assign({ size: 60, values: (u, splits) => splits.map(format) }, style),
        ],
        legend: { live: true },
        cursor: { drag: { x: true, y: false } },
      }, joined, this.box);
    }

    resize() {
      if (this.plot) this.plot.setSize({ width: this.width(), height: 210 });
    }
  }

  function onResize(charts) {
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(() => charts().forEach((c) => c.resize()), 100);
    });
  }

  function axisToggle(onChange) {
    const group = document.getElementById("x-axis");
    if (!group) return;
    group.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-x]");
      if (!button) return;
      group.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b === button));
      onChange(button.dataset.x);
    });
  }

  function setTimeAvailable(available) {
    const button = document.querySelector('#x-axis button[data-x="time"]');
    if (button) button.disabled = !available;
  }

  window.theseus = {
    GROUPS, Chart, label, pageData, getJSON, getMetrics, emptySeries, append, hasTime, onResize, axisToggle,
    setTimeAvailable, charts: {},
  };
})();

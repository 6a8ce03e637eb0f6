/* The compare page: each metric in one chart, one line per chosen run. */
(function () {
  "use strict";
  const T = window.theseus;
  const page = T.pageData();
  const container = document.getElementById("charts");
  const runs = page.runs || [];
  let snapshots = [];
  let axis = "step";

  function render() {
    container.replaceChildren();
    for (const key of Object.keys(T.charts)) delete T.charts[key];
    const keys = new Set();
    snapshots.forEach((snap) => Object.keys(snap.series).forEach((k) => keys.add(k)));
    const order = T.GROUPS.flat().filter((k) => keys.has(k));
    [...keys].filter((k) => !order.includes(k)).sort().forEach((k) => order.push(k));
    const anyTime = snapshots.some((snap) => Object.values(snap.series).some(T.hasTime));
    T.setTimeAvailable(anyTime);
    for (const key of order) {
      const chart = new T.Chart(container, key, T.label(key), runs.map((r) => r.id));
      T.charts[key] = chart;
      chart.draw(snapshots.map((snap) => snap.series[key] || T.emptySeries()), anyTime ? axis : "step");
    }
  }

  T.axisToggle((x) => { axis = x; render(); });
  T.onResize(() => Object.values(T.charts));
  Promise.all(runs.map((r) => T.getMetrics(r.api))).then((all) => {
    snapshots = all;
    render();
  });
})();

/* The runs list: compare the checked runs, refresh the table every few seconds, keep the checks. */
(function () {
  "use strict";
  const REFRESH_MS = 5000;
  const holder = document.getElementById("runs-table");
  const button = document.getElementById("compare-button");
  const filter = document.getElementById("filter");

  function checked() {
    return [...holder.querySelectorAll('input[name="run"]:checked')].map((box) => box.value);
  }

  function update() {
    button.disabled = checked().length < 2;
  }

  async function refresh() {
    const keep = new Set(checked());
    try {
      const response = await fetch("/runs-table" + window.location.search, { credentials: "same-origin" });
      if (response.ok) {
        holder.innerHTML = await response.text(); // rendered and escaped by the server
        holder.querySelectorAll('input[name="run"]').forEach((box) => { box.checked = keep.has(box.value); });
        update();
      }
    } catch (err) {
      // the server is restarting: the next refresh tries again
    }
    setTimeout(refresh, REFRESH_MS);
  }

  holder.addEventListener("change", update);
  filter.querySelector("select").addEventListener("change", () => filter.submit());
  update();
  setTimeout(refresh, REFRESH_MS);
})();

// Draws a daily chart per metric over the numbers the page already holds (the "Day by day"
// table), so the page reads the same without this script.
"use strict";
(function () {
  const table = document.getElementById("daily");
  const charts = document.getElementById("charts");
  if (!table || !charts || typeof uPlot === "undefined") return;
  const keys = Array.from(table.tHead.rows[0].cells).map((c) => c.dataset.key);
  const labels = Array.from(table.tHead.rows[0].cells).map((c) => c.textContent);
  const rows = Array.from(table.tBodies[0].rows);
  if (rows.length === 0) return;
  const days = rows.map((r) => Date.parse(r.cells[0].textContent.slice(0, 10) + "T00:00:00Z") / 1000);
  const number = (text) => Number(text.replace(/[^0-9.\-]/g, ""));
  const style = getComputedStyle(document.documentElement);
  const accent = style.getPropertyValue("--accent").trim() || "#2563eb";
  const fg = style.getPropertyValue("--fg").trim() || "#1c1e21";
  const line = style.getPropertyValue("--line").trim() || "#d9dce1";
  const axis = { stroke: fg, grid: { stroke: line, width: 1 }, ticks: { stroke: line } };
  for (let col = 1; col < keys.length; col++) {
    const values = rows.map((r) => number(r.cells[col].textContent));
    const figure = document.createElement("figure");
    figure.dataset.metric = keys[col];
    const caption = document.createElement("figcaption");
    caption.textContent = labels[col];
    figure.appendChild(caption);
    charts.appendChild(figure);
    const width = Math.max(260, figure.clientWidth - 16);
    new uPlot({
      width: width,
      height: 160,
      legend: { show: false },
      axes: [axis, Object.assign({ size: 56 }, axis)],
      series: [{}, { label: labels[col], stroke: accent, width: 2, fill: accent + "22" }],
    }, [days, values], figure);
  }
})();

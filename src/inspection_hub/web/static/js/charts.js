/* Draws each dashboard chart from its JSON data block (CSP: no inline scripts).
   Markup: <canvas data-chart="ID"> and <script type="application/json" id="ID">{...}</script>
   with {"type": "bar"|"line", "labels": [...], "series": [{"label": "...", "data": [...]}],
         "percent": true|false, "stacked": true|false}. The tables beside stay the no-JS view. */
(function () {
  "use strict";
  var palette = ["#0b4f8a", "#c2410c", "#15803d", "#7e22ce", "#a16207", "#be123c", "#0e7490", "#4d7c0f"];
  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source || typeof Chart === "undefined") { return; }
    var spec = JSON.parse(source.textContent);
    var datasets = spec.series.map(function (s, i) {
      var colour = palette[i % palette.length];
      return { label: s.label, data: s.data, backgroundColor: colour, borderColor: colour,
               borderWidth: spec.type === "line" ? 2 : 0, fill: false, tension: 0.2 };
    });
    var tick = spec.percent ? function (v) { return v + "%"; } : undefined;
    var chart = new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { display: datasets.length > 1 } },
        scales: {
          x: { stacked: !!spec.stacked },
          y: { stacked: !!spec.stacked, beginAtZero: true, suggestedMax: spec.percent ? 100 : undefined,
               ticks: { callback: tick } }
        }
      }
    });
    var points = 0;
    chart.data.datasets.forEach(function (d) { points += d.data.length; });
    canvas.setAttribute("data-rendered", "true");
    canvas.setAttribute("data-points", String(points));
  }
  function start() {
    var canvases = document.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) { draw(canvases[i]); }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

/* Draws each dashboard chart from its JSON data block (CSP: no inline scripts).
   Markup: <canvas data-chart="ID"> and <script type="application/json" id="ID">{...}</script>
   with {"type": "bar"|"line", "labels": [...], "series": [{"label": "...", "data": [...],
         "line": true|false}], "percent": true|false, "stacked": true|false}. A series with
   "line": true is drawn as a line over the bars, on the same axis but outside their stack
   (same unit, one scale: a second axis would make small counts look like large ones).
   The tables beside stay the no-JS view. */
(function () {
  "use strict";
  var palette = ["#0b4f8a", "#c2410c", "#15803d", "#7e22ce", "#a16207", "#be123c", "#0e7490", "#4d7c0f"];
  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source || typeof Chart === "undefined") { return; }
    var spec = JSON.parse(source.textContent);
    var datasets = spec.series.map(function (s, i) {
      var colour = palette[i % palette.length];
      var set = { label: s.label, data: s.data, backgroundColor: colour, borderColor: colour,
                  borderWidth: spec.type === "line" ? 2 : 0, fill: false, tension: 0.2 };
      if (s.line && spec.type !== "line") {
        set.type = "line";
        set.stack = "line-" + i;  // a stack of its own: its values as they are
        set.borderWidth = 2;
        set.tension = 0;  // counts per month: straight segments, no overshoot below zero
        set.order = -1;  // drawn over the bars
      }
      return set;
    });
    var tick = spec.percent ? function (v) { return v + "%"; } : undefined;
    var scales = {
      x: { stacked: !!spec.stacked },
      y: { stacked: !!spec.stacked, beginAtZero: true, suggestedMax: spec.percent ? 100 : undefined,
           ticks: { callback: tick, precision: spec.percent ? undefined : 0 } }
    };
    var chart = new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { display: datasets.length > 1 } },
        scales: scales
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

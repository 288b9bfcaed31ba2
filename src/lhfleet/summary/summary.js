// Draws each URL's charts from the JSON in #lhfleet-data with Chart.js and
// its box plot plugin. Scores and timings are box plots over the valid runs,
// with every run as a dot. A bar chart compares each run's benchmark index
// with the host's idle figure. window.lhfleetCharts counts the charts drawn.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("lhfleet-data").textContent);
  var palette = ["#0969da", "#8250df", "#1a7f37", "#bf8700", "#cf222e", "#57606a"];
  window.lhfleetCharts = 0;

  function values(runs, pick) {
    return runs
      .filter(function (run) { return run.ok; })
      .map(pick)
      .filter(function (value) { return typeof value === "number" && isFinite(value); });
  }

  function boxChart(canvasId, title, keys, labels, pick, unit, maximum) {
    var canvas = document.getElementById(canvasId);
    if (!canvas) return;
    var samples = keys.map(function (key) { return pick(key); });
    if (!samples.some(function (sample) { return sample.length; })) return;
    new Chart(canvas, {
      type: "boxplot",
      data: {
        labels: keys.map(function (key) { return labels[key] || key; }),
        datasets: [{
          label: title,
          data: samples,
          backgroundColor: "rgba(9, 105, 218, 0.15)",
          borderColor: palette[0],
          borderWidth: 1,
          itemRadius: 3,
          itemStyle: "circle",
          itemBackgroundColor: palette[1],
          outlierBackgroundColor: palette[4],
        }],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: { legend: { display: false }, title: { display: true, text: title } },
        scales: { y: { min: 0, max: maximum, title: { display: true, text: unit } } },
      },
    });
    window.lhfleetCharts += 1;
  }

  function benchmarkChart(entry) {
    var canvas = document.getElementById("bench-" + entry.index);
    var runs = entry.runs.filter(function (run) { return typeof run.benchmark === "number"; });
    if (!canvas || !runs.length) return;
    var datasets = [{
      type: "bar",
      label: "benchmark index",
      data: runs.map(function (run) { return run.benchmark; }),
      backgroundColor: runs.map(function (run) {
        return run.contended ? palette[4] : palette[2];
      }),
    }];
    if (data.idle) {
      datasets.push({
        type: "line",
        label: "contention threshold",
        data: runs.map(function () { return data.idle * data.ratio; }),
        borderColor: palette[3],
        borderDash: [6, 4],
        pointRadius: 0,
      });
    }
    new Chart(canvas, {
      data: { labels: runs.map(function (run) { return "run " + run.index; }), datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: { title: { display: true, text: "Benchmark index per run (red: contended)" } },
      },
    });
    window.lhfleetCharts += 1;
  }

  data.urls.forEach(function (entry) {
    boxChart("scores-" + entry.index, "Scores across runs", data.categories, {},
      function (key) {
        return values(entry.runs, function (run) {
          var score = run.scores[key];
          return typeof score === "number" ? score * 100 : null;
        });
      }, "score (0-100)", 100);
    boxChart("timings-" + entry.index, "Timings across runs", data.timings, data.labels,
      function (key) {
        return values(entry.runs, function (run) { return run.metrics[key]; });
      }, "milliseconds", undefined);
    benchmarkChart(entry);
  });
})();

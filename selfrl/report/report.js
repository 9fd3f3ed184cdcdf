// selfrl report: draws the charts (plotly.js, inlined above) and runs the samples browser's
// filters.  The cards themselves are rendered by selfrl/report/samples.py; this only shows,
// hides and copies them.  document.body.dataset.ready is "1" once every chart is drawn.
(function () {
  "use strict";

  function drawCharts() {
    const specs = JSON.parse(document.getElementById("chart-data").textContent);
    return Promise.all(specs.map(function (c) {
      return Plotly.newPlot(c.id, c.data, c.layout, {responsive: true, displaylogo: false});
    }));
  }

  const $ = function (id) { return document.getElementById(id); };
  const list = $("sample-list");
  const groups = list ? Array.from(list.querySelectorAll(".group")) : [];

  function numberOr(input, fallback) {
    const v = parseFloat(input.value);
    return Number.isNaN(v) ? fallback : v;
  }

  function filters() {
    return {run: $("f-run").value, step: $("f-step").value, kept: $("f-kept").value,
            correct: $("f-correct").value, min: numberOr($("f-min"), -Infinity),
            max: numberOr($("f-max"), Infinity)};
  }

  function completionShown(li, f) {
    const r = parseFloat(li.dataset.reward);
    const inRange = Number.isNaN(r) ? (f.min === -Infinity && f.max === Infinity) : (r >= f.min && r <= f.max);
    return inRange && (f.correct === "any" || li.dataset.correct === f.correct);
  }

  function groupShown(g, f) {
    return g.dataset.run === f.run && (f.step === "all" || g.dataset.step === f.step)
      && (f.kept === "any" || g.dataset.kept === f.kept);
  }

  function applyFilters() {
    const f = filters();
    let nGroups = 0, nCompletions = 0;
    groups.forEach(function (g) {
      let shown = 0;
      if (groupShown(g, f)) {
        g.querySelectorAll(".completion").forEach(function (li) {
          const ok = completionShown(li, f);
          li.hidden = !ok;
          shown += ok ? 1 : 0;
        });
      }
      g.hidden = shown === 0;
      nGroups += shown ? 1 : 0;
      nCompletions += shown;
    });
    $("f-count").textContent = nGroups + " groups, " + nCompletions + " completions shown";
    showBestWorst(f);
  }

  function showBestWorst(f) {
    const ofRun = groups.filter(function (g) { return g.dataset.run === f.run; });
    const steps = ofRun.map(function (g) { return parseInt(g.dataset.step, 10); });
    const step = f.step === "all" ? String(Math.max.apply(null, steps)) : f.step;
    // Trained and filtered-out groups alike: an all-wrong group the filter dropped is the worst.
    const pool = ofRun.filter(function (g) { return g.dataset.step === step; });
    const byMean = pool.slice().sort(function (a, b) {
      return (parseFloat(b.dataset.mean) || 0) - (parseFloat(a.dataset.mean) || 0);
    });
    $("bw-title").textContent = "best and worst group of step " + step;
    [["bw-best", byMean[0]], ["bw-worst", byMean[byMean.length - 1]]].forEach(function (pair) {
      const box = $(pair[0]);
      box.replaceChildren();
      if (pair[1]) {
        const copy = pair[1].cloneNode(true);
        copy.hidden = false;
        copy.querySelectorAll(".completion").forEach(function (li) { li.hidden = false; });
        box.appendChild(copy);
      }
    });
  }

  function showStepsOfRun() {
    const run = $("f-run").value;
    Array.from($("f-step").options).forEach(function (o) {
      o.hidden = o.value !== "all" && o.dataset.run !== run;
    });
    const chosen = $("f-step").selectedOptions[0];
    if (chosen && chosen.hidden) { $("f-step").value = "all"; }
  }

  if (groups.length) {
    ["f-step", "f-kept", "f-correct", "f-min", "f-max"].forEach(function (id) {
      $(id).addEventListener("input", applyFilters);
    });
    $("f-run").addEventListener("input", function () { showStepsOfRun(); applyFilters(); });
    $("f-diff").addEventListener("input", function () {
      document.body.classList.toggle("plain-text", !$("f-diff").checked);
    });
    showStepsOfRun();
    applyFilters();
  }

  drawCharts().then(function () { document.body.dataset.ready = "1"; });
})();

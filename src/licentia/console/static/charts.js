/* Licentia console charts: small dependency-free SVG line and bar charts.
 *
 * LicentiaCharts.line(container, options) and LicentiaCharts.bar(container, options) replace the
 * container's content with a figure: an SVG (role="img", aria-label summarising the data) with axes,
 * tick labels, a legend and one <title> tooltip per data point, followed by a visually hidden table of
 * the same data for screen readers and copy-paste. No CDN, no build step.
 *
 * options = {
 *   title: "Printers in use",            // caption, aria-label and table caption
 *   labels: ["09:00", "10:00", ...],     // x-axis categories, one per data point
 *   series: [{name: "Printers", values: [3, 4, ...], color: "#2563eb"}],
 *   stacked: false,                      // bar only: stack the series instead of grouping them
 *   yLabel: "peak in use",               // optional y-axis title
 *   width: 640, height: 240,             // viewBox size; the SVG scales to its container's width
 * }
 * Every point/bar carries data-series, data-label and data-value attributes (for tests and scripts).
 */
(function (global) {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var PALETTE = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f"];
  var HIDDEN = "position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;" +
    "clip:rect(0,0,0,0);white-space:nowrap;border:0";
  var MARGIN = {top: 12, right: 12, bottom: 34, left: 44};

  /* Styles go through the CSSOM: the console's Content-Security-Policy refuses style attributes. */
  function setAll(node, attrs) {
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "style") node.style.cssText = attrs[key];
      else node.setAttribute(key, String(attrs[key]));
    });
  }

  function svg(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    setAll(node, attrs);
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(name, attrs, parent, text) {
    var node = document.createElement(name);
    setAll(node, attrs);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function tooltip(node, text) {
    svg("title", {}, node).textContent = text;
  }

  /* About five round steps (1, 2, 5 x 10^n) from 0 to at least `max`; counts never get fractional ticks. */
  function ticks(max) {
    if (!(max > 0)) return [0, 1];
    var raw = max / 5;
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 5, 10].map(function (m) { return m * power; }).find(function (s) { return s >= raw; });
    step = Math.max(step, 1);
    var result = [];
    for (var v = 0; v < max + step; v += step) result.push(v);
    return result;
  }

  function maxOf(arrays) {
    return arrays.reduce(function (m, values) { return Math.max(m, Math.max.apply(null, [0].concat(values))); }, 0);
  }

  function colorOf(series, index) {
    return series.color || PALETTE[index % PALETTE.length];
  }

  function summary(options) {
    var n = options.labels.length;
    var parts = options.series.map(function (s) {
      var peak = s.values.length ? Math.max.apply(null, s.values) : 0;
      return s.name + " peaks at " + peak;
    });
    var range = n ? ", " + options.labels[0] + " to " + options.labels[n - 1] : "";
    return options.title + ": " + (n ? n + " points" + range + "; " + parts.join("; ") : "no data");
  }

  function table(options, parent) {
    // Hidden through a wrapper: a table's own height is only a minimum, so it would still stretch the page.
    var wrap = html("div", {"class": "visually-hidden chart-data-wrap", style: HIDDEN}, parent);
    var t = html("table", {"class": "chart-data"}, wrap);
    html("caption", {}, t, options.title);
    var head = html("tr", {}, html("thead", {}, t));
    html("th", {scope: "col"}, head, options.xLabel || "Time");
    options.series.forEach(function (s) { html("th", {scope: "col"}, head, s.name); });
    var body = html("tbody", {}, t);
    options.labels.forEach(function (label, i) {
      var row = html("tr", {}, body);
      html("th", {scope: "row"}, row, label);
      options.series.forEach(function (s) { html("td", {}, row, String(s.values[i] ?? "")); });
    });
    return t;
  }

  function legend(options, parent) {
    if (options.series.length < 2 && !options.legend) return;
    var list = html("ul", {"class": "chart-legend", "aria-hidden": "true",
      style: "list-style:none;display:flex;flex-wrap:wrap;gap:.25rem 1rem;margin:.25rem 0 0;padding:0;font-size:.85em"},
    parent);
    options.series.forEach(function (s, i) {
      var item = html("li", {}, list);
      html("span", {style: "display:inline-block;width:.8em;height:.8em;margin-right:.3em;background:" +
        colorOf(s, i)}, item);
      item.appendChild(document.createTextNode(s.name));
    });
  }

  /* The frame both chart kinds share: figure, svg, axes and labels; returns the plot geometry. */
  function frame(container, options, max) {
    var width = options.width || 640;
    var height = options.height || 240;
    container.textContent = "";
    var figure = html("figure", {"class": "chart", style: "margin:0;position:relative"}, container);
    html("figcaption", {"class": "chart-title", style: "font-weight:600;margin-bottom:.25rem"}, figure, options.title);
    var root = svg("svg", {viewBox: "0 0 " + width + " " + height, width: "100%", role: "img",
      "aria-label": summary(options), preserveAspectRatio: "xMidYMid meet",
      style: "display:block;max-width:100%;height:auto;font:11px system-ui,sans-serif"}, figure);
    var plot = {left: MARGIN.left, top: MARGIN.top, width: width - MARGIN.left - MARGIN.right,
      height: height - MARGIN.top - MARGIN.bottom, root: root};
    var yTicks = ticks(max);
    plot.max = yTicks[yTicks.length - 1];
    plot.y = function (value) { return plot.top + plot.height - (value / plot.max) * plot.height; };
    var axes = svg("g", {"class": "chart-axes", "aria-hidden": "true"}, root);
    yTicks.forEach(function (value) {
      var y = plot.y(value);
      svg("line", {x1: plot.left, x2: plot.left + plot.width, y1: y, y2: y, stroke: "#d4d4d8",
        "stroke-width": value === 0 ? 1 : 0.5}, axes);
      svg("text", {x: plot.left - 6, y: y + 4, "text-anchor": "end", fill: "currentColor"}, axes).textContent =
        String(value);
    });
    svg("line", {x1: plot.left, x2: plot.left, y1: plot.top, y2: plot.top + plot.height, stroke: "#71717a"}, axes);
    if (options.yLabel) {
      svg("text", {x: 10, y: plot.top + plot.height / 2, "text-anchor": "middle", fill: "currentColor",
        transform: "rotate(-90 10 " + (plot.top + plot.height / 2) + ")"}, axes).textContent = options.yLabel;
    }
    var n = options.labels.length;
    plot.slot = n ? plot.width / n : plot.width;
    plot.x = function (i) { return plot.left + plot.slot * (i + 0.5); };
    var every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(plot.width / 70))));
    options.labels.forEach(function (label, i) {
      if (i % every) return;
      svg("text", {x: plot.x(i), y: plot.top + plot.height + 16, "text-anchor": "middle", fill: "currentColor"},
        axes).textContent = label;
    });
    if (!n) {
      svg("text", {x: plot.left + plot.width / 2, y: plot.top + plot.height / 2, "text-anchor": "middle",
        fill: "currentColor"}, axes).textContent = "No data in this range";
    }
    legend(options, figure);
    table(options, figure);
    return plot;
  }

  function normalise(options) {
    return {
      title: options.title || "Chart",
      labels: (options.labels || []).map(String),
      series: (options.series || []).map(function (s) {
        return {name: s.name, color: s.color, values: (s.values || []).map(function (v) { return Number(v) || 0; })};
      }),
      stacked: Boolean(options.stacked),
      xLabel: options.xLabel,
      yLabel: options.yLabel,
      width: options.width,
      height: options.height,
    };
  }

  function line(container, options) {
    options = normalise(options);
    var plot = frame(container, options, maxOf(options.series.map(function (s) { return s.values; })));
    options.series.forEach(function (s, k) {
      var color = colorOf(s, k);
      var group = svg("g", {"class": "chart-series", "data-series": s.name}, plot.root);
      var points = s.values.map(function (v, i) { return plot.x(i) + "," + plot.y(v); });
      if (points.length > 1) {
        svg("polyline", {points: points.join(" "), fill: "none", stroke: color, "stroke-width": 2,
          "stroke-linejoin": "round"}, group);
      }
      s.values.forEach(function (v, i) {
        var dot = svg("circle", {"class": "chart-point", cx: plot.x(i), cy: plot.y(v), r: 3.5, fill: color,
          "data-series": s.name, "data-label": options.labels[i], "data-value": v}, group);
        tooltip(dot, options.labels[i] + " - " + s.name + ": " + v);
      });
    });
    return container.firstChild;
  }

  function bar(container, options) {
    options = normalise(options);
    var totals = options.labels.map(function (_, i) {
      return options.series.reduce(function (sum, s) { return sum + (s.values[i] || 0); }, 0);
    });
    var max = maxOf(options.stacked ? [totals] : options.series.map(function (s) { return s.values; }));
    var plot = frame(container, options, max);
    var inner = plot.slot * 0.8;
    var width = options.stacked || !options.series.length ? inner : inner / options.series.length;
    var base = options.labels.map(function () { return 0; });
    options.series.forEach(function (s, k) {
      var group = svg("g", {"class": "chart-series", "data-series": s.name}, plot.root);
      s.values.forEach(function (v, i) {
        var bottom = options.stacked ? base[i] : 0;
        var x = plot.x(i) - inner / 2 + (options.stacked ? 0 : k * width);
        var rect = svg("rect", {"class": "chart-bar", x: x, y: plot.y(bottom + v), width: Math.max(width - 1, 1),
          height: Math.max(plot.y(bottom) - plot.y(bottom + v), 0), fill: colorOf(s, k),
          "data-series": s.name, "data-label": options.labels[i], "data-value": v}, group);
        tooltip(rect, options.labels[i] + " - " + s.name + ": " + v);
        base[i] += v;
      });
    });
    return container.firstChild;
  }

  global.LicentiaCharts = {line: line, bar: bar, ticks: ticks};
})(window);

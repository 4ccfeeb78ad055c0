/* distillguard console: draws the graph and charts from JSON data blocks.
   All text placed in the page goes through textContent or the libraries' canvas
   drawing; nothing is ever inserted as HTML. */
(function () {
  "use strict";
  var me = document.getElementById("console-js");
  var root = (me && me.getAttribute("data-root")) || "";

  function readJSON(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function riskColour(r) {
    var t = Math.max(0, Math.min(1, r || 0));
    var light = 78 - Math.round(t * 40);
    return "hsl(4, 70%, " + light + "%)";
  }

  function drawGraph() {
    var g = readJSON("graph-data");
    var box = document.getElementById("graph");
    if (!g || !box || typeof cytoscape !== "function") return;
    if (!g.nodes.length) { box.textContent = "No shared evidence to draw."; return; }
    var cy = cytoscape({
      container: box,
      elements: { nodes: g.nodes, edges: g.edges },
      style: [
        { selector: "node[type = 'account']", style: {
            "background-color": function (n) { return riskColour(n.data("risk")); },
            "width": 16, "height": 16, "label": "", "border-width": 1, "border-color": "#7a1f1f" } },
        { selector: "node[type = 'hub']", style: {
            "shape": "diamond", "background-color": "#2f6fa8", "width": 22, "height": 22,
            "label": "data(label)", "font-size": 8, "color": "#1d3f5e", "text-wrap": "ellipsis",
            "text-max-width": 120, "text-valign": "bottom", "text-margin-y": 3 } },
        { selector: "node[type = 'account']:selected, node[type = 'account']:active", style: { "label": "data(label)", "font-size": 9 } },
        { selector: "node[kind = 'payment_fingerprint']", style: { "background-color": "#c0392b", "shape": "round-rectangle", "color": "#7a1f1f" } },
        { selector: "node[kind = 'subnet']", style: { "background-color": "#7fb3d5" } },
        { selector: "node[kind = 'user_agent']", style: { "background-color": "#8e44ad", "color": "#4a235a" } },
        { selector: "node[kind = 'email_domain']", style: { "background-color": "#27ae60", "color": "#145a32" } },
        { selector: "node[kind = 'signup_burst']", style: { "background-color": "#e67e22", "shape": "triangle", "color": "#7e5109" } },
        { selector: "edge", style: { "width": 1, "line-color": "#9fb3c8", "curve-style": "haystack", "opacity": 0.8 } },
        { selector: "edge[kind = 'payment_fingerprint']", style: { "line-color": "#c0392b", "width": 2 } }
      ],
      layout: { name: "cose", animate: false, randomize: false, nodeRepulsion: function () { return 6000; }, idealEdgeLength: function () { return 40; } }
    });
    var tip = document.createElement("div");
    tip.className = "graph-tip";
    box.appendChild(tip);
    cy.on("mouseover", "node", function (e) {
      var d = e.target.data();
      tip.textContent = d.type === "account" ? d.label + " · risk " + d.risk : d.label;
      tip.style.display = "block";
    });
    cy.on("mouseout", "node", function () { tip.style.display = "none"; });
    cy.on("tap", "node[type = 'account']", function (e) {
      window.location.href = root + "/accounts/" + encodeURIComponent(e.target.data("label"));
    });
    box.setAttribute("data-ready", String(cy.nodes().length));
    window.__dgGraph = cy;
  }

  var palette = ["#2f6fa8", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#b7950b", "#1f618d", "#943126", "#1e8449", "#6c3483"];

  function drawVolume() {
    var v = readJSON("volume-data");
    var box = document.getElementById("volume");
    if (!v || !box || typeof uPlot !== "function") return;
    if (!v.x.length) { box.textContent = "No events."; return; }
    var series = [{}], cols = [v.x];
    v.series.forEach(function (s, i) {
      series.push({ label: s.label, stroke: palette[i % palette.length], width: 1.5, points: { show: false } });
      cols.push(s.values);
    });
    new uPlot({ width: Math.max(320, box.clientWidth - 8), height: 240, series: series,
      axes: [{}, { label: "exchanges / hour" }], legend: { show: true } }, cols, box);
    box.setAttribute("data-ready", "1");
  }

  function drawAccount() {
    var a = readJSON("account-data");
    var box = document.getElementById("volume");
    if (!a || !box || typeof uPlot !== "function") return;
    if (!a.x.length) { box.textContent = "No events."; return; }
    new uPlot({ width: Math.max(320, box.clientWidth - 8), height: 220,
      series: [{}, { label: "exchanges", stroke: "#2f6fa8", fill: "rgba(47,111,168,0.15)", width: 1.5 },
               { label: "output tokens", stroke: "#c0392b", width: 1, scale: "tok" }],
      axes: [{}, { label: "exchanges / hour" }, { side: 1, scale: "tok", grid: { show: false }, size: 70 }] },
      [a.x, a.count, a.tokens], box);
    box.setAttribute("data-ready", "1");
  }

  drawGraph();
  drawVolume();
  drawAccount();
})();

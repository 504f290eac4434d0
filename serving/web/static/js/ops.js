// The operations dashboard (/ops): one Chart.js chart per figure, each fed by its own
// JSON endpoint under /v1/ops with the same filters. Chart.js is vendored
// (/static/vendor, see its README) and loaded as a classic script before this module.
//
// The staff key lives in sessionStorage (this tab only, shared with the review console)
// and goes with every call as a Bearer credential. After a chart is drawn its figure
// gets data-rendered="<n> points" (n: the data values drawn), which the browser test
// reads together with the canvas pixels.

import {
  api, el, humanLabel, money, percent, showError, announce, staffSignIn, staffSignOut, storedStaffKey,
} from "./common.js";

const PALETTE = ["#0b5cad", "#17703a", "#b3261e", "#8a4b00", "#5b3fa0", "#0f766e", "#be185d", "#4b5563"];
const charts = new Map(); // chart id -> Chart instance
let staffKey = null;

const $ = (id) => document.getElementById(id);

// --------------------------------------------------------------------- sign in
async function signIn(key, { quiet = false } = {}) {
  if (!await staffSignIn(key, { probe: "/v1/ops/outcomes", panel: "dashboard", quiet })) return false;
  staffKey = key;
  await loadAll();
  return true;
}

function signOut() {
  staffKey = null;
  for (const chart of charts.values()) chart.destroy();
  charts.clear();
  staffSignOut("dashboard");
}

// --------------------------------------------------------------------- data
function query() {
  const params = new URLSearchParams();
  for (const field of $("filters").elements) {
    if (field.name && field.value.trim()) params.set(field.name, field.value.trim());
  }
  return params.toString();
}

async function fetchAll() {
  const q = query();
  const names = ["volume", "outcomes", "trust", "grades", "top-skus", "recovery",
    "sustainability", "reviewers", "fraud"];
  const answers = await Promise.all(
    names.map((n) => api("GET", `/v1/ops/${n}${q ? `?${q}` : ""}`, { auth: staffKey })),
  );
  return Object.fromEntries(names.map((n, i) => [n, answers[i]]));
}

async function loadAll() {
  document.body.dataset.loaded = "false";
  showError($("filter-error"), "");
  let data;
  try {
    data = await fetchAll();
  } catch (err) {
    if (err.status === 401) { signOut(); showError($("signin-error"), "Your key is no longer valid. Sign in again."); return; }
    showError($("filter-error"), err.code && err.code !== "error" ? `${err.message} (${err.code})` : err.message);
    document.body.dataset.loaded = "error";
    return;
  }
  drawAll(data);
  totals(data);
  document.body.dataset.loaded = "true";
  announce("Dashboard updated.");
}

// --------------------------------------------------------------------- shaping
/** Rows -> {labels, datasets}: one dataset per `series` value, x along `x`. */
function pivot(rows, x, series, value = "count") {
  const labels = [...new Set(rows.map((r) => r[x] ?? "none"))];
  const names = [...new Set(rows.map((r) => r[series] ?? "none"))];
  const datasets = names.map((name, i) => ({
    label: humanLabel(String(name)),
    data: labels.map((l) => rows
      .filter((r) => (r[x] ?? "none") === l && (r[series] ?? "none") === name)
      .reduce((sum, r) => sum + r[value], 0)),
    backgroundColor: PALETTE[i % PALETTE.length],
    borderColor: PALETTE[i % PALETTE.length],
  }));
  return { labels: labels.map(String), datasets };
}

function single(labels, values, label) {
  return {
    labels,
    datasets: [{ label, data: values, backgroundColor: labels.map((_, i) => PALETTE[i % PALETTE.length]) }],
  };
}

function specs(d) {
  const stacked = { x: { stacked: true }, y: { stacked: true, beginAtZero: true } };
  const mix = Object.entries(d.outcomes.counts).filter(([, n]) => n > 0);
  const fates = d.sustainability.fates.filter((f) => f.items > 0);
  const ch = d.recovery.channels;
  const money3 = ["paid", "expected", "realised"].map((k, i) => ({
    label: humanLabel(k), data: ch.map((c) => c[k]), backgroundColor: PALETTE[i],
  }));
  const rates = ["abstain_rate", "unfamiliar_rate"].map((k, i) => ({
    label: humanLabel(k), data: d.trust.rows.map((r) => r[k] ?? 0),
    borderColor: PALETTE[i + 1], backgroundColor: PALETTE[i + 1],
  }));
  const load = ["approve", "correct", "reject"].map((k, i) => ({
    label: humanLabel(k), data: d.reviewers.workload.map((r) => r[k]), backgroundColor: PALETTE[i],
  }));
  const age = ["returns", "inspections"].map((k, i) => ({
    label: humanLabel(k), data: d.reviewers.queue_age.map((r) => r[k]), backgroundColor: PALETTE[i],
  }));
  return {
    "volume-reason": { type: "bar", data: pivot(d.volume.rows, "period", "reason"), scales: stacked },
    "volume-category": { type: "bar", data: pivot(d.volume.rows, "period", "category"), scales: stacked },
    outcomes: { type: "doughnut", data: single(mix.map(([k]) => humanLabel(k)), mix.map(([, n]) => n), "Returns") },
    trust: { type: "line", data: { labels: d.trust.rows.map((r) => r.period), datasets: rates }, scales: { y: { min: 0, max: 1 } } },
    "grades-category": { type: "bar", data: pivot(d.grades.rows, "category", "grade"), scales: stacked },
    "grades-sku": { type: "bar", data: pivot(d.grades.rows, "sku", "grade"), scales: stacked },
    "top-rate": { type: "bar", data: single(d["top-skus"].by_rate.map((r) => r.sku), d["top-skus"].by_rate.map((r) => r.rate ?? 0), "Return rate"), indexAxis: "y" },
    "top-damage": { type: "bar", data: pivot(d["top-skus"].by_damage, "damage", "sku"), scales: stacked },
    recovery: { type: "bar", data: { labels: ch.map((c) => humanLabel(c.channel)), datasets: money3 } },
    sustainability: { type: "doughnut", data: single(fates.map((f) => humanLabel(f.fate)), fates.map((f) => f.items), "Items") },
    workload: { type: "bar", data: { labels: d.reviewers.workload.map((r) => r.reviewer), datasets: load }, scales: stacked },
    "queue-age": { type: "bar", data: { labels: d.reviewers.queue_age.map((r) => r.band), datasets: age }, scales: stacked },
    agreement: { type: "bar", data: single(d.reviewers.agreement.map((g) => humanLabel(g.grade)), d.reviewers.agreement.map((g) => g.rate ?? 0), "Agreement"), scales: { y: { min: 0, max: 1 } } },
    "fraud-flags": { type: "bar", data: pivot(d.fraud.flags, "period", "code"), scales: stacked },
    "repeat-returners": { type: "bar", data: single(d.fraud.repeat_returners.map((r) => r.customer_id), d.fraud.repeat_returners.map((r) => r.returns), "Returns"), indexAxis: "y" },
  };
}

// --------------------------------------------------------------------- drawing
function points(data) {
  return data.datasets.reduce((n, ds) => n + ds.data.filter((v) => v !== 0 && v != null).length, 0);
}

function draw(id, spec) {
  const figure = $(`chart-${id}`);
  if (!figure) return;
  const n = points(spec.data);
  const old = charts.get(id);
  if (old) { old.destroy(); charts.delete(id); }
  figure.querySelector(".chart-empty").hidden = n > 0;
  figure.querySelector(".chart-box").hidden = n === 0;
  if (n === 0) { figure.dataset.rendered = "0 points"; return; }
  const options = {
    animation: false, responsive: true, maintainAspectRatio: false,
    plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
  };
  if (spec.scales) options.scales = spec.scales;
  if (spec.indexAxis) options.indexAxis = spec.indexAxis;
  const chart = new window.Chart(figure.querySelector("canvas"), { type: spec.type, data: spec.data, options });
  charts.set(id, chart);
  figure.dataset.rendered = `${n} points`;
}

function drawAll(data) {
  if (!window.Chart) {
    showError($("filter-error"), "The chart library did not load; reload the page.");
    return;
  }
  for (const [id, spec] of Object.entries(specs(data))) draw(id, spec);
}

function totals(d) {
  const items = [
    ["Returns", String(d.volume.total)],
    ["Abstain rate", d.trust.abstain_rate == null ? "–" : percent(d.trust.abstain_rate)],
    ["Unfamiliar rate", d.trust.unfamiliar_rate == null ? "–" : percent(d.trust.unfamiliar_rate)],
    ["Value lost to salvage", money(d.recovery.salvage_loss)],
    ["Items routed", String(d.sustainability.routed)],
  ];
  $("totals").replaceChildren(...items.map(([k, v]) =>
    el("div", { class: "total" }, el("dt", {}, k), el("dd", {}, v))));
}

// --------------------------------------------------------------------- wiring
function init() {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = $("ops-key").value.trim();
    if (!key) { showError($("signin-error"), "Enter your staff key."); return; }
    $("signin-submit").disabled = true;
    await signIn(key);
    $("signin-submit").disabled = false;
  });
  $("sign-out").addEventListener("click", signOut);
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); loadAll(); });
  const key = storedStaffKey();
  const ready = () => { document.body.dataset.ready = "true"; };
  if (key) {
    signIn(key, { quiet: true }).then((ok) => { if (!ok) { $("signin").hidden = false; } ready(); });
  } else {
    $("signin").hidden = false;
    ready();
  }
}

init();

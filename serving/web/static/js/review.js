// Reviewer console: the queue of returns waiting for a person and flagged dock
// inspections; the detail of one item (photos with heatmap overlays, flags with their
// evidence, scores, shopper photos beside dock photos, audit history); verdicts.
//
// The reviewer key lives in sessionStorage (this tab only) and goes with every call as
// a bearer credential. Photos need that credential too, so they are fetched and shown
// through object URLs rather than plain <img src> links.

import {
  announce, ago, api, clearImageCache, dateTime, el, humanLabel, imageUrl, money, percent,
  sentence, showError, staffSignIn, staffSignOut, storedStaffKey,
} from "./common.js";
import { measureLines, photoPair } from "./evidence.js";

// GET /v1/review/items/{type}/{id} -> {subject_type, subject_id, return_detail,
// inspection_detail, audit}.
const returnOf = (item) => item.return_detail || null;
const inspectionOf = (item) => item.inspection_detail || null;
const $ = (id) => document.getElementById(id);

const state = {
  key: null,
  model: null, // {grade_labels, damage_labels, model_version, policy_version}
  sort: "age",
  queue: [],
  selected: null, // {type, id}
  item: null, // the loaded review item
  overlay: "none",
  images: new Map(), // url -> object URL (cleared when the detail changes)
  values: new Map(), // subject id -> value at stake (kept after the item leaves the queue)
  photos: [], // [{img, photoUrl, heatmapUrl(label), labels, n, who}]
  loadSeq: 0,
};

// --------------------------------------------------------------------- sign in
async function signIn(key, { quiet = false } = {}) {
  const probe = "/v1/review/queue?sort=age&limit=1";
  if (!await staffSignIn(key, { probe, panel: "console", quiet })) return false;
  state.key = key;
  await loadModel();
  await loadQueue();
  return true;
}

function signOut() {
  state.key = null;
  state.selected = null;
  clearImageCache(state.images);
  $("detail").classList.add("is-empty");
  $("detail-empty").hidden = false;
  $("detail-body").hidden = true;
  staffSignOut("console");
  $("reviewer-key").value = "";
  $("reviewer-key").focus();
}

async function loadModel() {
  try {
    state.model = await api("GET", "/v1/model", { auth: state.key });
    $("model-note").textContent = `Model ${state.model.model_version}`;
  } catch {
    state.model = null; // labels then come from the item's own scores
  }
}

// --------------------------------------------------------------------- queue
async function loadQueue() {
  showError($("queue-error"), "");
  try {
    state.queue = await api("GET", `/v1/review/queue?sort=${state.sort}&limit=200`, { auth: state.key });
  } catch (err) {
    if (err.status === 401) { signOut(); showError($("signin-error"), "Your key is no longer valid. Sign in again."); return; }
    showError($("queue-error"), err.message);
    return;
  }
  renderQueue();
}

function renderQueue() {
  const list = $("queue");
  const items = state.queue;
  list.dataset.sort = state.sort; // which order the list shows (tests wait on it)
  $("queue-count").textContent = items.length
    ? `${items.length} item${items.length === 1 ? "" : "s"} waiting for review.`
    : "";
  if (!items.length) {
    list.replaceChildren(el("li", { class: "empty", text: "The queue is empty. Nice work." }));
    return;
  }
  list.replaceChildren(...items.map((item) => {
    const isReturn = item.subject_type === "return";
    const current = state.selected && state.selected.id === item.subject_id;
    const what = [item.category, item.sku].filter(Boolean).join(" · ") || "Unmatched parcel";
    return el("li", {},
      el("button", {
        type: "button", class: "queue-item", "aria-current": current ? "true" : null,
        "data-type": item.subject_type, "data-id": item.subject_id,
        onclick: () => select(item.subject_type, item.subject_id),
      },
      el("span", { class: "row" },
        el("span", { class: `badge ${isReturn ? "return" : "inspection"}`, text: isReturn ? "Return" : "Dock" }),
        el("span", { class: "value", text: `Value ${money(item.value)}` })),
      el("span", { class: "id", text: item.subject_id }),
      el("span", { class: "sub", text: `${what} · grade ${item.grade ? humanLabel(item.grade) : "none"} · ${ago(item.created_at)}` }),
      item.flags.length ? el("span", { class: "chips" }, item.flags.map((f) => el("span", { class: "chip", text: f }))) : null,
      // sort=teach: the random slice (placed by chance, the unbiased accuracy sample)
      item.why === "random" ? el("span", { class: "chips" }, el("span", { class: "chip", text: "random sample" })) : null));
  }));
}

// --------------------------------------------------------------------- detail
async function select(type, id) {
  state.selected = { type, id };
  const queued = state.queue.find((q) => q.subject_id === id);
  if (queued) state.values.set(id, queued.value);
  renderQueue();
  $("detail").classList.remove("is-empty");
  const seq = ++state.loadSeq;
  $("detail-empty").hidden = true;
  const body = $("detail-body");
  body.hidden = false;
  body.replaceChildren(el("p", { class: "hint", text: "Loading…" }));
  try {
    const item = await api("GET", `/v1/review/items/${type}/${encodeURIComponent(id)}`, { auth: state.key });
    const related = await relatedItems(item);
    if (seq !== state.loadSeq) return; // a later click won
    state.item = item;
    clearImageCache(state.images);
    renderDetail(item, related);
    const heading = $("h-item");
    if (heading) {
      heading.focus({ preventScroll: true });
      if (window.matchMedia("(max-width: 63.99rem)").matches) $("detail").scrollIntoView({ block: "start" });
    }
  } catch (err) {
    if (seq !== state.loadSeq) return;
    body.replaceChildren(el("p", { class: "error", role: "alert", text: err.message }));
  }
}

/** The other side of an item: the shopper's return for a dock inspection, the dock
 * inspections (from the audit trail) for a return. */
async function relatedItems(item) {
  const out = { returns: [], inspections: [] };
  try {
    const ins = inspectionOf(item);
    if (item.subject_type === "inspection" && ins && ins.return_id) {
      const r = await api("GET", `/v1/review/items/return/${encodeURIComponent(ins.return_id)}`, { auth: state.key });
      if (returnOf(r)) out.returns.push(returnOf(r));
    } else if (item.subject_type === "return") {
      const ids = [...new Set(item.audit.filter((a) => a.action === "dock_inspected")
        .map((a) => a.payload && a.payload.inspection_id).filter(Boolean))];
      for (const id of ids.slice(0, 3)) {
        const r = await api("GET", `/v1/review/items/inspection/${encodeURIComponent(id)}`, { auth: state.key });
        if (inspectionOf(r)) out.inspections.push(inspectionOf(r));
      }
    }
  } catch {
    // The related side is a convenience; the item itself is still reviewable.
  }
  return out;
}

function gradeLabels(probs) {
  if (state.model && state.model.grade_labels) return state.model.grade_labels;
  return Object.keys(probs || {});
}

function damageLabels(probs) {
  if (state.model && state.model.damage_labels) return state.model.damage_labels;
  return Object.keys(probs || {});
}

function renderDetail(item, related) {
  const isReturn = item.subject_type === "return";
  const ret = isReturn ? returnOf(item) : (related.returns[0] || null);
  const ins = isReturn ? (related.inspections[0] || null) : inspectionOf(item);
  const value = state.values.get(item.subject_id);
  const subject = isReturn ? ret : ins;
  const decision = isReturn ? ret.decision : null;
  const gradeProbs = isReturn ? (decision && decision.grade ? decision.grade.probs : {}) : subject.grade_probs;
  const damageProbs = isReturn ? (decision ? decision.damage_probs : {}) : subject.damage_probs;
  const grade = isReturn ? (decision && decision.grade ? decision.grade.label : null) : subject.grade;
  const flags = isReturn ? (decision ? decision.flags : []) : subject.flags;

  const parts = [];
  parts.push(el("div", { class: "detail-head" },
    el("span", { class: `badge ${isReturn ? "return" : "inspection"}`, text: isReturn ? "Return" : "Dock inspection" }),
    el("h2", { id: "h-item", tabindex: "-1", text: item.subject_id }),
    statusBadge(isReturn ? ret.status : (subject.needs_review ? "needs_review" : subject.status))));
  $("detail").setAttribute("aria-labelledby", "h-item");

  parts.push(summaryList(isReturn ? returnFacts(ret, value) : inspectionFacts(subject, value)));
  if (decision) {
    parts.push(el("p", { class: "notice" },
      el("strong", { text: `Shopper saw: ${humanLabel(decision.outcome)}. ` }), sentence(decision.message)));
  }
  const firstPhoto = isReturn ? (ret && ret.photos.length ? ret.photos[0].photo_id : null)
    : (subject.photo_ids[0] || null);
  parts.push(section("Flags", flagList(flags, {
    key: state.key, images: state.images, thisPhotoId: firstPhoto,
    openReturn: (id) => select("return", id),
  })));
  parts.push(section("Scores", scores(gradeProbs, damageProbs, grade)));
  parts.push(section("Photos", photosBlock(ret, ins, damageLabels(damageProbs))));
  parts.push(section("Verdict", verdictForm(item, grade, gradeProbs, damageProbs)));
  parts.push(section("History", auditList(item.audit)));
  $("detail-body").replaceChildren(...parts);
  applyOverlay();
}

function statusBadge(status) {
  const tone = { approved: "ok", reviewed: "ok", rejected: "bad", needs_review: "warn", retake: "warn" }[status] || "return";
  return el("span", { class: `badge ${tone}`, text: humanLabel(status || "") });
}

function returnFacts(ret, value) {
  return [
    ["Order", ret.order_id], ["Item", ret.item_name || "–"], ["SKU", ret.sku], ["Category", ret.category],
    ["Reason", humanLabel(ret.reason)], ["Shopper note", ret.note || "–"],
    ["Value", value === undefined ? "–" : money(value)], ["Opened", dateTime(ret.created_at)],
    ["Model", ret.decision ? ret.decision.model_version : "–"],
    ["Policy", ret.decision ? ret.decision.policy_version : "–"],
  ];
}

function inspectionFacts(ins, value) {
  return [
    ["Return", ins.return_id || `unmatched (label said ${ins.claimed_return_id || "nothing"})`],
    ["Station", ins.station_id || "–"], ["Shopper-photo grade", ins.shopper_grade ? humanLabel(ins.shopper_grade) : "–"],
    ["Tier", ins.tier ? `${humanLabel(ins.tier)} (${percent(ins.markdown)} off)` : "–"],
    ["Channel", ins.channel ? humanLabel(ins.channel) : "–"],
    ["Expected recovery", ins.expected_recovery === null ? "–" : money(ins.expected_recovery)],
    ["Value", value === undefined ? "–" : money(value)], ["Inspected", dateTime(ins.created_at)],
    ["Model", ins.model_version], ["Policy", ins.policy_version],
  ];
}

function summaryList(rows) {
  return el("dl", { class: "summary" }, rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
}

function section(title, content) {
  return el("div", { class: "detail-section" }, el("h3", { text: title }), content);
}

/** Each flag with its evidence: the measure against its threshold, the photos it
 * compares side by side (evidence.js), then every stored evidence field. */
function flagList(flags, ctx) {
  if (!flags || !flags.length) return el("p", { class: "hint", text: "No flags." });
  return el("ul", { class: "flags" }, flags.map((f) => {
    const evidence = Object.entries(f.evidence || {});
    return el("li", { class: `flag effect-${f.effect || "review"}`, "data-code": f.code },
      el("span", { class: "code", text: f.code }),
      f.effect ? el("span", { class: "hint", text: ` · ${f.effect}` }) : null,
      el("p", { text: sentence(f.message) }),
      ...measureLines(f),
      photoPair(f, ctx),
      evidence.length ? el("dl", { class: "evidence" }, evidence.flatMap(([k, v]) => [
        el("dt", { text: k }), el("dd", { text: formatValue(v) })])) : null);
  }));
}

function formatValue(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
  if (v === null || v === undefined) return "–";
  if (typeof v === "string") return v;
  const text = JSON.stringify(v);
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

function scores(gradeProbs, damageProbs, grade) {
  const grades = gradeLabels(gradeProbs).filter((g) => g in (gradeProbs || {}));
  const damages = damageLabels(damageProbs).filter((d) => d in (damageProbs || {}));
  const table = (caption, labels, probs, cls, top) => el("table", { class: "score-table" },
    el("caption", { text: caption }),
    el("tbody", {}, labels.map((label) => el("tr", { class: label === top ? "top" : null },
      el("th", { scope: "row", text: humanLabel(label) }),
      el("td", {}, el("div", { class: `bar ${cls}`, "aria-hidden": "true" },
        el("span", { style: null, "data-w": probs[label] }))),
      el("td", { class: "num", text: percent(probs[label]) })))));
  const block = el("div", { class: "scores" },
    grades.length ? table(`Grade${grade ? `: ${humanLabel(grade)}` : ""}`, grades, gradeProbs, "", grade)
      : el("p", { class: "hint", text: "No grade: no photo passed the quality checks." }),
    damages.length ? table("Damage", damages, damageProbs, "damage", null) : null);
  // Widths are set from script (the CSP forbids inline style attributes in markup).
  for (const span of block.querySelectorAll("[data-w]")) span.style.width = `${Math.round(Number(span.dataset.w) * 100)}%`;
  return block;
}

// --------------------------------------------------------------------- photos
function photosBlock(ret, ins, labels) {
  state.photos = [];
  const options = [["none", "Photo"], ["grade", "All damage"], ...labels.map((l) => [l, humanLabel(l)])];
  const toolbar = el("fieldset", { class: "overlay-toolbar" },
    el("legend", { text: "Heatmap overlay" }),
    options.map(([value, text]) => el("label", { class: "seg" },
      el("input", {
        type: "radio", name: "overlay", value, checked: value === state.overlay,
        onchange: () => { state.overlay = value; applyOverlay(); },
      }),
      el("span", { text }))));
  const shopper = gallery("Shopper photos", ret ? ret.photos.map((p) => ({
    id: p.photo_id, n: p.index + 1, url: p.url, passed: p.quality.passed, grade: p.grade,
    heatmap: (label) => `${p.url}/heatmap?label=${encodeURIComponent(label)}`,
    labels: new Set(p.heatmaps.map((h) => h.label)), who: "Shopper",
  })) : [], ret ? "No photos yet." : "No shopper return is linked to this parcel.");
  const dock = gallery("Dock photos", ins ? ins.photo_ids.map((id, i) => ({
    id, n: i + 1, url: ins.photo_urls[i], passed: null, grade: null,
    heatmap: (label) => `/v1/photos/${encodeURIComponent(id)}/heatmap?label=${encodeURIComponent(label)}`,
    labels: null, who: "Dock",
  })) : [], "Not inspected at the dock yet.");
  return el("div", {}, toolbar, el("div", { class: "galleries two" }, shopper, dock));
}

function gallery(title, photos, emptyText) {
  const box = el("div", { class: "gallery" }, el("h4", { text: title }));
  if (!photos.length) {
    box.append(el("p", { class: "none", text: emptyText }));
    return box;
  }
  const grid = el("div", { class: "photos" });
  for (const p of photos) {
    const img = el("img", { alt: `${p.who} photo ${p.n}` });
    const caption = el("figcaption", {},
      el("span", { text: `${p.who} photo ${p.n}` }),
      p.passed === null ? null : el("span", { class: `badge ${p.passed ? "ok" : "warn"}`, text: p.passed ? "Quality passed" : "Quality failed" }),
      p.grade ? el("span", { class: "hint", text: `Photo grade: ${humanLabel(p.grade)}` }) : null);
    grid.append(el("figure", {}, img, caption));
    state.photos.push({ ...p, img });
  }
  box.append(grid);
  return box;
}

async function applyOverlay() {
  const label = state.overlay;
  const seq = state.loadSeq;
  await Promise.all(state.photos.map(async (p) => {
    const wantHeat = label !== "none" && (!p.labels || p.labels.has(label));
    const url = wantHeat ? p.heatmap(label) : p.url;
    try {
      const src = await imageUrl(url, state.key, state.images);
      if (seq !== state.loadSeq) return;
      p.img.src = src;
      p.img.alt = wantHeat
        ? `${p.who} photo ${p.n} with the ${label === "grade" ? "combined damage" : humanLabel(label).toLowerCase()} heatmap`
        : `${p.who} photo ${p.n}`;
    } catch {
      p.img.alt = `${p.who} photo ${p.n} (could not be loaded)`;
    }
  }));
}

// --------------------------------------------------------------------- verdict
function verdictForm(item, grade, gradeProbs, damageProbs) {
  const grades = gradeLabels(gradeProbs);
  const damages = damageLabels(damageProbs);
  const present = new Set(damages.filter((d) => (damageProbs || {})[d] >= 0.5));
  const radio = (value, title, hint) => el("label", { class: "choice" },
    el("input", { type: "radio", name: "verdict", value, required: true }),
    el("span", {}, el("span", { class: "choice-title", text: title }), el("span", { class: "choice-meta", text: hint })));
  const gradeSelect = el("select", { id: "v-grade", name: "grade" },
    grades.map((g) => el("option", { value: g, selected: g === grade, text: humanLabel(g) })));
  const damageBoxes = el("div", { class: "checks" }, damages.map((d) => el("label", { class: "check", for: `v-dmg-${d}` },
    el("input", { type: "checkbox", id: `v-dmg-${d}`, name: "damage", value: d, checked: present.has(d) }),
    humanLabel(d))));
  const correction = el("div", { id: "correct-fields", hidden: true },
    el("div", { class: "field" }, el("label", { for: "v-grade", text: "Correct grade" }), gradeSelect),
    el("fieldset", {}, el("legend", { text: "Damage visible in the photos" }), damageBoxes));
  const error = el("p", { class: "error", role: "alert", hidden: true, id: "verdict-error" });
  const done = el("p", { class: "notice", id: "verdict-done", hidden: true });
  const form = el("form", { class: "verdict-form", id: "verdict-form", novalidate: true },
    el("fieldset", {}, el("legend", { text: "Decision" }),
      el("div", { class: "radio-row" },
        radio("approve", "Approve", "The model's grade is right; accept the item."),
        radio("reject", "Reject", "Refuse the return or flag the parcel."),
        radio("correct", "Correct the labels", "Set the right grade and damage; becomes a training label."))),
    correction,
    el("div", { class: "field" }, el("label", { for: "v-note" }, "Note ", el("span", { class: "optional", text: "(optional)" })),
      el("textarea", { id: "v-note", name: "note", rows: "2", maxlength: "2000" })),
    error, done,
    el("div", { class: "actions" }, el("button", { type: "submit", class: "btn primary", id: "verdict-submit", text: "Submit verdict" })));
  form.addEventListener("change", () => {
    correction.hidden = form.elements.verdict.value !== "correct";
  });
  form.addEventListener("submit", (e) => { e.preventDefault(); submitVerdict(item, form); });
  return form;
}

async function submitVerdict(item, form) {
  const verdict = form.elements.verdict.value;
  if (!verdict) {
    showError($("verdict-error"), "Choose approve, reject or correct first.");
    form.querySelector('input[name="verdict"]').focus();
    return;
  }
  const body = { subject_type: item.subject_type, subject_id: item.subject_id, verdict };
  if (verdict === "correct") {
    body.grade = form.elements.grade.value;
    body.damage = Array.from(form.querySelectorAll('input[name="damage"]:checked')).map((i) => i.value);
  }
  const note = form.elements.note.value.trim();
  if (note) body.note = note;
  const button = $("verdict-submit");
  button.disabled = true;
  showError($("verdict-error"), "");
  try {
    const saved = await api("POST", "/v1/review/verdicts", { body, auth: state.key });
    const what = saved.verdict === "correct"
      ? `corrected to ${humanLabel(saved.grade || "")}${saved.damage && saved.damage.length ? ` with ${saved.damage.map(humanLabel).join(", ").toLowerCase()}` : ""}`
      : `${saved.verdict === "approve" ? "approved" : "rejected"}`;
    announce(`Verdict saved: ${item.subject_id} ${what}.`);
    await loadQueue();
    await select(item.subject_type, item.subject_id);
    const notice = $("verdict-done");
    if (notice) { notice.textContent = `Verdict saved: ${what}.`; notice.hidden = false; }
  } catch (err) {
    showError($("verdict-error"), err.message);
    button.disabled = false;
  }
}

// --------------------------------------------------------------------- audit
function auditList(rows) {
  if (!rows || !rows.length) return el("p", { class: "hint", text: "No history." });
  return el("ol", { class: "audit" }, rows.map((a) => el("li", {},
    el("span", { class: "what", text: humanLabel(a.action) }), " ",
    el("span", { class: "when", text: `${dateTime(a.at)} · ${a.actor}` }),
    el("div", { class: "payload", text: Object.entries(a.payload || {})
      .filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && !v.length))
      .map(([k, v]) => `${k}=${formatValue(v)}`).join("  ") }))));
}

// --------------------------------------------------------------------- wiring
function init() {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = $("reviewer-key").value.trim();
    if (!key) { showError($("signin-error"), "Enter your reviewer key."); return; }
    $("signin-submit").disabled = true;
    await signIn(key);
    $("signin-submit").disabled = false;
  });
  $("sign-out").addEventListener("click", signOut);
  $("sort").addEventListener("change", () => { state.sort = $("sort").value; loadQueue(); });
  $("refresh").addEventListener("click", loadQueue);
  $("back-to-queue").addEventListener("click", () => {
    $("queue-panel").scrollIntoView({ block: "start" });
    const current = document.querySelector('.queue-item[aria-current="true"]') || $("h-queue");
    current.focus();
  });
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

// Shopper return page: find the order, pick the item and reason, send 1-6 photos, see
// the decision; retake a failed photo without starting over.
//
// Photos are decoded by the browser with their EXIF orientation applied, downscaled to
// at most 1600 px on the long side and re-encoded as JPEG before upload, so a 12 MP
// phone photo travels as a few hundred kB and carries no location metadata.

import {
  ApiError, announce, api, el, errorFrom, icon, imageUrl, sentence, showError,
} from "./common.js";
import { nextViews, outlineSvg, viewStatus } from "./guided.js";

const MAX_PHOTOS = 6;
const MAX_SIDE = 1600;
const JPEG_QUALITY = 0.9;
const OPEN_STATUSES = new Set(["awaiting_photos", "retake"]);
const FINAL_STATUSES = new Set([
  "approved", "needs_review", "rejected", "reviewed", "label_issued", "received", "graded",
  "dispositioned", "resolved", "closed", "expired",
]);
const LABEL_STATUSES = new Set(["approved", "reviewed", "label_issued"]);
const REASONS = {
  changed_mind: "I changed my mind",
  does_not_fit: "It doesn't fit",
  not_as_described: "It isn't as described",
  defective: "It doesn't work properly",
  damaged_in_transit: "It arrived damaged",
  wrong_item: "I received the wrong item",
};
const OUTCOMES = {
  approved: {
    title: "Your return is approved", icon: "i-ok",
    next: ["Pack the item with all its parts and accessories.",
      "Send it back within the return period using your return reference below.",
      "We confirm your refund when the item reaches our returns centre."],
  },
  retake: { title: "Please retake a photo", icon: "i-warn", next: [] },
  needs_review: {
    title: "We'll take a closer look", icon: "i-info",
    next: ["A member of our team checks your photos, usually within one working day.",
      "You don't need to do anything now; we'll email you the result."],
  },
  rejected: { title: "We can't accept this return", icon: "i-stop", next: [] },
  reviewed: {
    title: "Your return is approved", icon: "i-ok",
    next: ["Pack the item with all its parts and accessories.",
      "Send it back within the return period using your return reference below."],
  },
  label_issued: {
    title: "Your return is approved", icon: "i-ok",
    next: ["Pack the item with all its parts and accessories.",
      "Print the return label, stick it on the parcel and send it back."],
  },
  received: { title: "Your parcel has arrived", icon: "i-info", next: [] },
  graded: { title: "Your item was inspected", icon: "i-info", next: [] },
  dispositioned: { title: "Your item was processed", icon: "i-ok", next: [] },
  resolved: { title: "Your return is resolved", icon: "i-ok", next: [] },
  closed: { title: "This return is closed", icon: "i-info", next: [] },
  expired: { title: "This return expired", icon: "i-stop", next: [] },
};

const $ = (id) => document.getElementById(id);
const tokenKey = (returnId) => `returnlens.token.${returnId}`;

const state = {
  order: null, // {order_id, delivered_at, items[]}
  email: "",
  returnId: null,
  token: null,
  status: null,
  summary: null, // {order_id, sku, name, reason}
  uploaded: 0, // photos stored on the server for this return
  pending: [], // photos chosen but not sent: {key, blob, url, error, name}
  cards: new Map(), // server photo id -> <li>
  photos: new Map(), // server photo id -> its photo ({view, quality, ...})
  views: [], // the views the category asks for (guided capture): {name, prompt, outline}
  retakeFor: null, // server photo id being retaken
  busy: false,
};

// --------------------------------------------------------------------- navigation
function showStep(name, { focus = true } = {}) {
  for (const id of ["order", "item", "photos", "missing"]) $(`step-${id}`).hidden = id !== name;
  const order = ["order", "item", "photos", "result"];
  const current = name === "photos" && FINAL_STATUSES.has(state.status) ? "result" : name;
  const at = order.indexOf(current);
  order.forEach((step, i) => {
    const li = $(`nav-${step}`);
    li.classList.toggle("done", at >= 0 && i < at);
    if (i === at) li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
  });
  if (focus) {
    const heading = document.querySelector(`#step-${name} h2`);
    if (heading) heading.focus({ preventScroll: false });
  }
}

function markInvalid(input, invalid) {
  if (invalid) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

// --------------------------------------------------------------------- step 1: order
async function onOrderSubmit(event) {
  event.preventDefault();
  const orderInput = $("order-id");
  const emailInput = $("email");
  const orderId = orderInput.value.trim();
  const email = emailInput.value.trim();
  const errors = [];
  markInvalid(orderInput, !orderId);
  markInvalid(emailInput, !/^[^@\s]+@[^@\s]+$/.test(email));
  if (!orderId) errors.push("Enter your order number.");
  if (!/^[^@\s]+@[^@\s]+$/.test(email)) errors.push("Enter the email address you ordered with, like name@example.com.");
  if (errors.length) {
    showError($("order-error"), errors.join(" "));
    (orderId ? emailInput : orderInput).focus();
    return;
  }
  showError($("order-error"), "");
  const button = $("order-submit");
  button.disabled = true;
  try {
    state.order = await api("POST", "/v1/orders/lookup", { body: { order_id: orderId, email } });
    state.email = email;
    renderItems();
    showStep("item");
    announce(`Order ${state.order.order_id} found.`);
  } catch (err) {
    const message = err.code === "unknown_order"
      ? "We can't find an order with that number and email address. Check both and try again."
      : err.message;
    showError($("order-error"), message);
  } finally {
    button.disabled = false;
  }
}

function renderItems() {
  const list = $("item-list");
  list.replaceChildren();
  const items = state.order.items || [];
  $("order-summary").textContent = `Order ${state.order.order_id}: choose the item you want to return.`;
  if (!items.length) {
    list.append(el("p", { class: "notice", text: "This order has no items that can be returned online." }));
    return;
  }
  items.forEach((item, i) => {
    const id = `item-${i}`;
    list.append(el("label", { class: "choice", for: id },
      el("input", { type: "radio", name: "sku", id, value: item.sku, checked: items.length === 1 }),
      el("span", {},
        el("span", { class: "choice-title", text: item.name }),
        el("span", { class: "choice-meta", text: `${item.sku} · ${Number(item.price).toFixed(2)}` }))));
  });
}

// --------------------------------------------------------------------- step 2: item
async function onItemSubmit(event) {
  event.preventDefault();
  const chosen = document.querySelector('input[name="sku"]:checked');
  const reason = $("reason");
  const problems = [];
  if (!chosen) problems.push("Choose the item you are returning.");
  if (!reason.value) problems.push("Choose a reason for the return.");
  markInvalid(reason, !reason.value);
  if (problems.length) {
    showError($("item-error"), problems.join(" "));
    (chosen ? reason : document.querySelector('input[name="sku"]') || reason).focus();
    return;
  }
  showError($("item-error"), "");
  const button = $("item-submit");
  button.disabled = true;
  const note = $("note").value.trim();
  try {
    const created = await api("POST", "/v1/returns", {
      body: {
        order_id: state.order.order_id, email: state.email, sku: chosen.value,
        reason: reason.value, note: note || null,
      },
    });
    const item = state.order.items.find((it) => it.sku === chosen.value);
    startReturn(created.return_id, created.token, created.status || "awaiting_photos", {
      order_id: state.order.order_id, sku: chosen.value, name: item ? item.name : chosen.value,
      reason: reason.value,
    }, created.required_views || []);
    announce("Return started. Now add photos of the item.");
  } catch (err) {
    showError($("item-error"), err.message);
  } finally {
    button.disabled = false;
  }
}

function startReturn(returnId, token, status, summary, views = []) {
  state.views = views;
  state.returnId = returnId;
  state.token = token;
  state.status = status;
  state.summary = summary;
  try { sessionStorage.setItem(tokenKey(returnId), token); } catch { /* private mode */ }
  // The address now names the return (so a reload comes back here); the token stays out
  // of it and lives in this tab's session storage only.
  history.replaceState(null, "", `/?return=${encodeURIComponent(returnId)}`);
  renderSummary();
  updateCaptureArea();
  showStep("photos");
}

function renderSummary() {
  const s = state.summary;
  const rows = [["Order", s.order_id], ["Item", s.name || s.sku], ["Reason", REASONS[s.reason] || s.reason]];
  $("return-summary").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  $("return-ref").textContent = `Return reference: ${state.returnId}`;
}

// --------------------------------------------------------------------- photos
/** Decode (EXIF-upright), downscale to MAX_SIDE and re-encode as JPEG. */
async function downscale(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    throw new Error(`${file.name || "This file"} can't be opened as a photo here. Try a JPEG or PNG photo.`);
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
  if (!blob) throw new Error("This photo could not be prepared for upload. Please try another one.");
  return { blob, width, height };
}

function slotsLeft() {
  return MAX_PHOTOS - state.uploaded - state.pending.length;
}

function updateCount() {
  const left = slotsLeft();
  const chosen = state.pending.length;
  let text;
  if (state.uploaded === 0 && chosen === 0) text = `Add 1 to ${MAX_PHOTOS} photos.`;
  else if (left <= 0) text = `That's the maximum of ${MAX_PHOTOS} photos for one return.`;
  else if (chosen === 0) text = `You can add ${left} more photo${left === 1 ? "" : "s"}.`;
  else text = `${chosen} photo${chosen === 1 ? "" : "s"} ready to send; you can add ${left} more.`;
  $("photo-count").textContent = text;
  const ready = state.pending.filter((p) => p.blob).length;
  const send = $("send-photos");
  send.disabled = state.busy || ready === 0;
  send.textContent = ready > 1 ? `Send ${ready} photos` : "Send photo";
  $("send-actions").hidden = !OPEN_STATUSES.has(state.status) || state.pending.length === 0;
}

async function addFiles(fileList) {
  showError($("photo-error"), "");
  const files = Array.from(fileList || []);
  const room = slotsLeft();
  if (files.length > room) {
    showError($("photo-error"), room > 0
      ? `A return takes at most ${MAX_PHOTOS} photos, so only the first ${room} were added.`
      : `A return takes at most ${MAX_PHOTOS} photos.`);
  }
  for (const file of files.slice(0, Math.max(0, room))) {
    const entry = { key: `p${Date.now()}-${Math.random().toString(16).slice(2)}`, name: file.name };
    if (state.views.length) {  // guided: the next view still needing a photo ("" once all have one)
      const open = nextViews(state.views, [...state.photos.values()], state.pending);
      entry.view = open.length ? open[0].name : "";
    }
    state.pending.push(entry);
    const li = pendingCard(entry);
    $("photo-grid").append(li);
    updateCount();
    try {
      const { blob } = await downscale(file);
      entry.blob = blob;
      entry.url = URL.createObjectURL(blob);
    } catch (err) {
      entry.error = err.message;
    }
    li.replaceWith(pendingCard(entry));
    updateCount();
  }
  renderGuide();
}

function viewPrompt(name) {
  const view = state.views.find((v) => v.name === name);
  return view ? view.prompt : "";
}

function pendingCard(entry) {
  const position = state.uploaded + state.pending.indexOf(entry) + 1;
  const remove = el("button", {
    type: "button", class: "btn small",
    "aria-label": `Remove photo ${position}`,
    onclick: () => removePending(entry),
  }, "Remove");
  const body = el("div", { class: "body" },
    el("p", { class: "status", text: entry.error ? "Can't use this file" : (entry.blob ? "Ready to send" : "Preparing…") }),
    entry.view ? el("p", { class: "meta view-name", text: viewPrompt(entry.view) }) : null,
    entry.error ? el("p", { class: "meta", text: entry.error }) : null,
    el("div", { class: "card-actions" }, remove));
  const thumb = entry.url
    ? el("img", { class: "thumb", src: entry.url, alt: `Photo ${position}, not sent yet` })
    : el("div", { class: "thumb", role: "img", "aria-label": `Photo ${position}, being prepared` });
  return el("li", { class: "photo-card pending", "data-key": entry.key }, thumb, body);
}

function removePending(entry) {
  state.pending = state.pending.filter((p) => p !== entry);
  if (entry.url) URL.revokeObjectURL(entry.url);
  const li = document.querySelector(`[data-key="${entry.key}"]`);
  if (li) li.remove();
  updateCount();
  renderGuide();
}

// One Idempotency-Key per upload attempt, kept while the attempt may be retried: when the
// answer is lost (timeout, dropped connection) the server may already have stored the
// photos, and a retry of the same photos with the same key gets that stored decision
// instead of "already sent". Keyed by the local keys of the photos in the attempt.
const uploadKeys = new Map();

function newUploadKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes); // crypto.randomUUID needs a secure context; this does not
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** POST the photos with XMLHttpRequest: fetch() has no upload progress events. */
function uploadPhotos(blobs, onProgress, idempotencyKey, views = null) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1/returns/${encodeURIComponent(state.returnId)}/photos`);
    xhr.setRequestHeader("Authorization", `Bearer ${state.token}`);
    xhr.setRequestHeader("Idempotency-Key", idempotencyKey);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    xhr.timeout = 120000;
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.upload.addEventListener("load", () => onProgress(1, true));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(errorFrom(xhr.status, xhr.response));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network",
      "The upload was interrupted. Check your connection and try again.")));
    xhr.addEventListener("timeout", () => reject(new ApiError(0, "timeout",
      "The upload took too long. Try again on a faster connection.")));
    const form = new FormData();
    blobs.forEach((blob, i) => form.append("photos", blob, `photo-${i + 1}.jpg`));
    if (views) views.forEach((view) => form.append("views", view || ""));  // aligned with photos
    xhr.send(form);
  });
}

function setProgress(fraction, done = false) {
  const bar = $("upload-bar");
  bar.value = Math.round(fraction * 100);
  bar.dataset.events = String(Number(bar.dataset.events || 0) + 1);
  $("upload-label").textContent = done || fraction >= 1
    ? "Checking your photos…"
    : `Uploading photos… ${Math.round(fraction * 100)}%`;
}

async function send(entries, replacing = null) {
  if (state.busy || !entries.length) return;
  state.busy = true;
  showError($("photo-error"), "");
  const progress = $("upload-progress");
  progress.hidden = false;
  $("upload-bar").value = 0;
  $("upload-bar").dataset.events = "0";
  $("upload-label").textContent = "Uploading photos… 0%";
  updateCount();
  const attempt = entries.map((e) => e.key).join(" ");
  if (!uploadKeys.has(attempt)) uploadKeys.set(attempt, newUploadKey());
  try {
    const result = await uploadPhotos(entries.map((e) => e.blob), setProgress,
      uploadKeys.get(attempt), state.views.length ? entries.map((e) => e.view) : null);
    uploadKeys.delete(attempt);
    state.uploaded += result.photos.length;
    if (replacing) state.photos.delete(replacing);
    for (const photo of result.photos) state.photos.set(photo.photo_id, photo);
    result.photos.forEach((photo, i) => {
      const entry = entries[i];
      const card = photoCard(photo, entry ? entry.url : null, Boolean(replacing));
      const pendingLi = entry && document.querySelector(`[data-key="${entry.key}"]`);
      const old = replacing && i === 0 ? state.cards.get(replacing) : null;
      if (old) {
        old.replaceWith(card);
        state.cards.delete(replacing);
        if (pendingLi) pendingLi.remove();
      } else if (pendingLi) pendingLi.replaceWith(card);
      else $("photo-grid").append(card);
      state.cards.set(photo.photo_id, card);
    });
    state.pending = state.pending.filter((p) => !entries.includes(p));
    applyDecision(result.decision);
  } catch (err) {
    // No answer (status 0) or a server failure: the photos may be stored, keep the key
    // for the retry. A refusal (4xx) stored nothing: a retry is a new attempt.
    if (err.status >= 400 && err.status < 500) uploadKeys.delete(attempt);
    const message = err.code === "duplicate_upload"
      ? "That photo was already sent. Take a new photo instead."
      : err.message;
    showError($("photo-error"), message);
    if (replacing) entries.forEach((e) => { if (e.url) URL.revokeObjectURL(e.url); });
  } finally {
    state.busy = false;
    progress.hidden = true;
    updateCount();
  }
}

function failedChecks(photo) {
  const checks = (photo.quality && photo.quality.checks) || [];
  return checks.filter((c) => !c.passed);
}

function photoCard(photo, localUrl, retake = false) {
  const n = photo.index + 1;
  const passed = Boolean(photo.quality && photo.quality.passed);
  // Once the return is decided, a failed photo no longer needs action: it was not used.
  const unused = !passed && !OPEN_STATUSES.has(state.status);
  const li = el("li", {
    class: `photo-card ${passed ? "passed" : unused ? "unused" : "failed"}`,
    "data-photo-id": photo.photo_id,
  });
  const img = el("img", { class: "thumb", alt: `Photo ${n} of your item`, src: localUrl || null });
  if (!localUrl) {
    imageUrl(photo.url, state.token).then((url) => { img.src = url; }).catch(() => {
      img.alt = `Photo ${n} (could not be loaded)`;
    });
  }
  const advice = unused ? [] : failedChecks(photo).map((c) => el("li", { text: sentence(c.message || c.name) }));
  const status = passed ? "Photo looks good" : unused ? "Not used" : "Retake needed";
  const shows = photo.view ? `: ${viewPrompt(photo.view)}` : "";
  const meta = unused ? `Photo ${n}: a clearer photo was used instead`
    : retake ? `Photo ${n} (retake)${shows}` : `Photo ${n}${shows}`;
  const body = el("div", { class: "body" },
    el("p", { class: "status" }, icon(passed ? "i-ok" : unused ? "i-info" : "i-warn"), status),
    el("p", { class: "meta", text: meta }),
    advice.length ? el("ul", { class: "advice" }, advice) : null);
  if (!passed && OPEN_STATUSES.has(state.status) && slotsLeft() > 0) {
    body.append(el("div", { class: "card-actions" },
      el("button", {
        type: "button", class: "btn small primary retake",
        "aria-label": `Retake photo ${n}`,
        onclick: () => startRetake(photo.photo_id),
      }, "Retake this photo")));
  }
  li.append(img, body);
  return li;
}

function startRetake(photoId) {
  state.retakeFor = photoId;
  const input = $("retake-input");
  input.value = "";
  input.click();
}

async function onRetakeChosen() {
  const input = $("retake-input");
  const file = input.files && input.files[0];
  const target = state.retakeFor;
  state.retakeFor = null;
  if (!file || !target) return;
  if (slotsLeft() <= 0) {
    showError($("photo-error"), `A return takes at most ${MAX_PHOTOS} photos.`);
    return;
  }
  try {
    const { blob } = await downscale(file);
    const entry = { key: `r${Date.now()}`, blob, url: URL.createObjectURL(blob), name: file.name };
    const old = state.photos.get(target);
    if (state.views.length) entry.view = (old && old.view) || "";  // the retake shows the same view
    await send([entry], target);
  } catch (err) {
    showError($("photo-error"), err.message);
  }
}

// --------------------------------------------------------------------- decision
function applyDecision(decision) {
  state.status = decision.outcome;
  renderDecision(decision.outcome, decision.message);
  if (!OPEN_STATUSES.has(state.status)) refreshReturn();
  updateCaptureArea();
  // Retake buttons depend on the new status: re-render the failed cards' actions.
  for (const card of state.cards.values()) {
    const button = card.querySelector("button.retake");
    if (button && !OPEN_STATUSES.has(state.status)) button.remove();
  }
  showStep("photos", { focus: false });
  const box = $("decision");
  box.focus();
  announce(`${$("decision-title").textContent}. ${decision.message}`);
}

function renderDecision(outcome, message) {
  const info = OUTCOMES[outcome] || { title: "Thanks, we have your photos", icon: "i-info", next: [] };
  const box = $("decision");
  box.className = `decision decision--${outcome}`;
  box.hidden = false;
  $("decision-icon").setAttribute("href", `#${info.icon}`);
  $("decision-title").textContent = info.title;
  $("decision-message").textContent = sentence(message || "");
  const next = $("decision-next");
  next.replaceChildren(...info.next.map((t) => el("li", { text: t })));
  next.hidden = info.next.length === 0;
}

// The return label: issued once on approval (POST), then drawn by the server as PNG/PDF.
// Both downloads carry the shopper token, so they are fetched here as blobs.
async function showLabel() {
  const box = $("label-box");
  try {
    const label = await api("POST", `/v1/returns/${encodeURIComponent(state.returnId)}/label`,
      { auth: state.token });
    state.status = label.status;
    const [png, pdf] = await Promise.all([
      imageUrl(label.png_url, state.token), imageUrl(label.pdf_url, state.token),
    ]);
    $("label-image").src = png;
    $("label-png").href = png;
    $("label-png").setAttribute("download", `return-label-${state.returnId}.png`);
    $("label-pdf").href = pdf;
    $("label-pdf").setAttribute("download", `return-label-${state.returnId}.pdf`);
    showError($("label-error"), "");
    box.hidden = false;
  } catch (err) {
    box.hidden = false;
    showError($("label-error"), err.message);
  }
}

// How the shopper is paid back: the server's sentence, and while nothing is issued yet a
// choice between a refund and store credit (when the shop offers it).
function renderResolution(resolution) {
  const box = $("resolution-box");
  box.hidden = !resolution;
  if (!resolution) return;
  $("resolution-message").textContent = sentence(resolution.message);
  const offered = new Set(resolution.offer || []);
  $("resolution-choice").hidden = resolution.status !== "planned"
    || !(offered.has("refund") && offered.has("store_credit"));
  $("choose-refund").disabled = resolution.method === "refund";
  $("choose-credit").disabled = resolution.method === "store_credit";
}

// After a decision: the server's view of what follows (resolution, timeline).
async function refreshReturn() {
  try {
    const ret = await api("GET", `/v1/returns/${encodeURIComponent(state.returnId)}`,
      { auth: state.token });
    state.status = ret.status;
    if (ret.status === "resolved") renderDecision(ret.status, ret.status_message);  // keep it
    renderResolution(ret.resolution);
    renderTimeline(ret.timeline || []);
    if (LABEL_STATUSES.has(ret.status)) showLabel();
  } catch { /* the decision is shown; the extras can wait for the next load */ }
}

async function chooseResolution(method) {
  try {
    const chosen = await api("POST", `/v1/returns/${encodeURIComponent(state.returnId)}/resolution`,
      { auth: state.token, body: { method } });
    renderResolution(chosen);
    showError($("resolution-error"), "");
    announce(chosen.message);
  } catch (err) {
    showError($("resolution-error"), err.message);
  }
}

// What happened so far: one line per status change (the server's sentences).
function renderTimeline(entries) {
  const list = $("timeline");
  list.replaceChildren(...entries.map((e) => el("li", { "data-status": e.status },
    el("time", { datetime: e.at, text: new Date(e.at).toLocaleString() }), " ",
    el("span", { text: e.sentence }))));
  $("timeline-box").hidden = entries.length < 2;
}

function updateCaptureArea() {
  const open = OPEN_STATUSES.has(state.status);
  $("capture-area").hidden = !open || slotsLeft() <= 0 && state.pending.length === 0;
  $("capture-intro").textContent = state.views.length
    ? `We need ${state.views.length} photos of the item, one of each view below. Take them one at a time; we check each photo straight away.`
    : state.uploaded
      ? "Add another photo, or retake the one marked below."
      : `Take 1 to ${MAX_PHOTOS} photos that show the whole item. We check each photo straight away.`;
  if (!open) {
    for (const entry of state.pending) removePending(entry);
  }
  renderGuide();
  updateCount();
}

// Guided capture: the view to photograph next (prompt + outline) and every view's state.
function renderGuide() {
  const guide = $("guide");
  guide.hidden = !state.views.length;
  if (!state.views.length) return;
  const statuses = viewStatus(state.views, [...state.photos.values()], state.pending);
  const current = statuses.find((v) => v.status === "needed");
  const at = current ? statuses.indexOf(current) + 1 : 0;
  $("guide-step").textContent = current
    ? `Photo ${at} of ${statuses.length}`
    : "You have a photo of every view we need";
  $("guide-prompt").textContent = current
    ? current.prompt
    : "Send your photos, or add a close-up of any damage.";
  $("guide-outline").replaceChildren(current ? outlineSvg(current.outline) : "");
  guide.dataset.view = current ? current.name : "";
  const words = { done: "Done", chosen: "Ready to send", needed: "Still needed" };
  $("guide-list").replaceChildren(...statuses.map((v) => el("li", {
    class: `view-${v.status}`, "data-view": v.name,
    "aria-current": current && v.name === current.name ? "step" : null,
  }, el("span", { text: v.prompt }), " ", el("span", { class: "view-state", text: words[v.status] }))));
}

// --------------------------------------------------------------------- deep link
function showMissing(message) {
  $("missing-message").textContent = message;
  showStep("missing");
}

async function resumeReturn(returnId) {
  let token = null;
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (hash.get("token")) {
    token = hash.get("token");
    try { sessionStorage.setItem(tokenKey(returnId), token); } catch { /* private mode */ }
  } else {
    try { token = sessionStorage.getItem(tokenKey(returnId)); } catch { token = null; }
  }
  // Drop the token from the address bar (and so from history and screenshots).
  history.replaceState(null, "", `/?return=${encodeURIComponent(returnId)}`);
  if (!token) {
    showMissing("Open the link from your return email again, or start the return again with your order number.");
    return;
  }
  try {
    const ret = await api("GET", `/v1/returns/${encodeURIComponent(returnId)}`, { auth: token });
    state.returnId = ret.return_id;
    state.token = token;
    state.status = ret.status;
    state.summary = { order_id: ret.order_id, sku: ret.sku, name: ret.item_name || ret.sku, reason: ret.reason };
    state.uploaded = ret.photos.length;
    state.views = ret.required_views || [];
    for (const photo of ret.photos) state.photos.set(photo.photo_id, photo);
    renderSummary();
    const grid = $("photo-grid");
    grid.replaceChildren();
    for (const photo of ret.photos) {
      const card = photoCard(photo, null);
      grid.append(card);
      state.cards.set(photo.photo_id, card);
    }
    if (ret.decision || ret.status !== "awaiting_photos") {
      renderDecision(ret.status, ret.status_message || (ret.decision && ret.decision.message));
    }
    renderTimeline(ret.timeline || []);
    if (LABEL_STATUSES.has(ret.status)) showLabel();
    renderResolution(ret.resolution);
    updateCaptureArea();
    showStep("photos");
  } catch (err) {
    if (err.status === 401 || err.status === 403 || err.status === 404) {
      showMissing("This return link is not valid any more. Start the return again with your order number.");
    } else {
      showMissing(err.message);
    }
  }
}

// --------------------------------------------------------------------- wiring
function init() {
  $("order-form").addEventListener("submit", onOrderSubmit);
  $("item-form").addEventListener("submit", onItemSubmit);
  $("item-back").addEventListener("click", () => showStep("order"));
  $("choose-refund").addEventListener("click", () => chooseResolution("refund"));
  $("choose-credit").addEventListener("click", () => chooseResolution("store_credit"));
  for (const id of ["camera-input", "library-input"]) {
    const input = $(id);
    input.addEventListener("change", async () => {
      const files = Array.from(input.files || []);
      input.value = "";
      await addFiles(files);
    });
  }
  $("retake-input").addEventListener("change", onRetakeChosen);
  $("send-photos").addEventListener("click", () => send(state.pending.filter((p) => p.blob)));
  const returnId = new URLSearchParams(location.search).get("return");
  if (returnId) resumeReturn(returnId);
  else showStep("order", { focus: false });
  document.body.dataset.ready = "true";
}

init();

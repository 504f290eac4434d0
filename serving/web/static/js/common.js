// Shared helpers of the ReturnLens pages: API calls, DOM building, formatting.
// Plain ES modules, no dependencies, no build step.

/** An API error: the service's JSON {code, message, details} plus the HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const NETWORK_MESSAGE = "We couldn't reach ReturnLens. Check your connection and try again.";

/** Turn a failed response body into an ApiError with a sentence a person can read. */
export function errorFrom(status, body) {
  if (body && typeof body === "object" && typeof body.message === "string") {
    return new ApiError(status, body.code || "error", sentence(body.message), body.details || {});
  }
  if (status === 429) return new ApiError(status, "rate_limited", "Too many tries in a short time. Please wait a minute and try again.");
  if (status >= 500) return new ApiError(status, "server_error", "Something went wrong on our side. Please try again in a moment.");
  return new ApiError(status, "error", `The request failed (HTTP ${status}).`);
}

/** First letter upper-case and a full stop at the end. */
export function sentence(text) {
  const t = String(text || "").trim();
  if (!t) return t;
  const s = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

/** JSON API call. `auth` is a bearer credential (shopper token or staff key). */
export async function api(method, path, { body, auth, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth) headers.Authorization = `Bearer ${auth}`;
  let response;
  try {
    response = await fetch(path, {
      method, headers, signal, credentials: "omit", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "network", NETWORK_MESSAGE);
  }
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try { data = await response.json(); } catch { data = null; }
  }
  if (!response.ok) throw errorFrom(response.status, data);
  return data;
}

/** Fetch an image that needs a credential and return an object URL for <img src>. */
export async function imageUrl(path, auth, cache) {
  if (cache && cache.has(path)) return cache.get(path);
  let response;
  try {
    response = await fetch(path, {
      headers: auth ? { Authorization: `Bearer ${auth}` } : {}, credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "network", NETWORK_MESSAGE);
  }
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { data = null; }
    throw errorFrom(response.status, data);
  }
  const url = URL.createObjectURL(await response.blob());
  if (cache) cache.set(path, url);
  return url;
}

/** Revoke every object URL in a cache (when the view that used them goes away). */
export function clearImageCache(cache) {
  for (const url of cache.values()) URL.revokeObjectURL(url);
  cache.clear();
}

/**
 * Build an element. attrs: {class, text, html: never}, on<event> handlers, dataset via
 * "data-*", booleans set/unset attributes. Children may be nodes, strings or null.
 */
export function el(tag, attrs = {}, ...children) {
  const node = tag === "svg" || tag === "use"
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An inline icon from the page's SVG sprite. */
export function icon(name, cls = "") {
  const svg = el("svg", { viewBox: "0 0 24 24", "aria-hidden": "true", focusable: "false", class: cls || null });
  svg.append(el("use", { href: `#${name}` }));
  return svg;
}

/** Show or hide an error paragraph. */
export function showError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

/** "B_like_new" -> "Like new"; "missing_part" -> "Missing part". Labels come from data. */
export function humanLabel(label) {
  if (!label) return "";
  const words = String(label).replace(/^[A-Z]_(?=[a-z])/, "").replace(/_/g, " ");
  return words[0].toUpperCase() + words.slice(1);
}

export function percent(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return "–";
  return `${Math.round(p * 100)}%`;
}

export function money(value) {
  if (value === null || value === undefined) return "–";
  return Number(value).toFixed(2);
}

/** "3 min ago", "5 h ago", "2 days ago", from an ISO time. */
export function ago(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  const d = Math.floor(s / 86400);
  return d === 1 ? "1 day ago" : `${d} days ago`;
}

export function dateTime(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso || "");
  return t.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** Announce a short text in the page's polite live region. */
export function announce(text) {
  const live = document.getElementById("live");
  if (!live) return;
  live.textContent = "";
  // A new text node in a later task makes screen readers read repeated messages too.
  window.setTimeout(() => { live.textContent = text; }, 50);
}

// --------------------------------------------------------------------- staff sign-in
// The review console and the ops dashboard share one staff key per tab
// (sessionStorage), one sign-in form (#signin, #signin-error) and a user bar (#user-bar).
export const STAFF_KEY = "returnlens.reviewerKey";

export function storedStaffKey() {
  try { return sessionStorage.getItem(STAFF_KEY); } catch { return null; }
}

/** Try `key` on `probe` (a GET the page needs); when accepted, remember it for the tab
 * and show `panel` instead of the sign-in form. Refusals are shown unless `quiet`. */
export async function staffSignIn(key, { probe, panel, quiet = false }) {
  const $ = (id) => document.getElementById(id);
  try {
    await api("GET", probe, { auth: key });
  } catch (err) {
    if (!quiet) {
      const message = err.status === 401 || err.status === 403
        ? `That key was not accepted: ${err.message}`
        : err.message;
      showError($("signin-error"), message);
    }
    return false;
  }
  try { sessionStorage.setItem(STAFF_KEY, key); } catch { /* private mode: keep it in memory */ }
  showError($("signin-error"), "");
  $("signin").hidden = true;
  $(panel).hidden = false;
  $("user-bar").hidden = false;
  return true;
}

/** Forget the tab's key and show the sign-in form instead of `panel`. */
export function staffSignOut(panel) {
  try { sessionStorage.removeItem(STAFF_KEY); } catch { /* nothing stored */ }
  document.getElementById(panel).hidden = true;
  document.getElementById("user-bar").hidden = true;
  document.getElementById("signin").hidden = false;
}

// A flag's evidence for staff, at a glance: the number that fired it against its
// threshold, and, for photo flags, the photos it compares side by side (this item's
// photo beside the earlier return's photo or the catalog reference it matched), with a
// link to open the other return in the console.
//
// The policy stores each flag's numbers in `evidence` (serving/policy/*). MEASURES says,
// per flag code, which key is the measured value, which is the threshold and how they
// compare; a flag not listed still shows every evidence field in the list below.

import { el, humanLabel, imageUrl } from "./common.js";

// code -> [[value key, threshold key, relation that fired, unit], ...]
export const MEASURES = {
  reused_photo: [["distance", "max_hamming", "≤", "bits"], ["score", "threshold", "≥", ""]],
  catalog_photo: [["distance", "max_hamming", "≤", "bits"], ["score", "threshold", "≥", ""]],
  wrong_item: [["similarity", "min_similarity", "<", ""]],
  low_confidence: [["confidence", "min_grade_confidence", "<", ""]],
  repeat_returner: [["returns_in_window", "min_returns", "≥", "returns"],
    ["rejected_returns", "min_rejected", "≥", "rejected"]],
  high_value: [["price", "high_value", "≥", ""]],
  outside_return_window: [["days_since_delivery", "return_window_days", ">", "days"]],
  photo_quality: [["usable_photos", "min_usable_photos", "<", "usable"]],
  grade_discrepancy: [["gap", "min_grade_gap", "≥", "grades"]],
};

// Evidence keys naming photos: [key, caption of that side].
const THIS_PHOTO = "photo_id";
const OTHER_PHOTOS = [["other_photo_id", "Earlier photo"], ["reference_photo_id", "Catalog reference"]];
// Flags whose other side is a SKU's catalog reference photo (evidence.sku): reference
// photos have no photo id, the staff route serves them by SKU.
const REFERENCE_FLAGS = new Set(["catalog_photo", "wrong_item"]);

/** [url of the other photo or null, caption] of a photo flag, or null if it has none. */
function otherSide(flag) {
  const ev = flag.evidence || {};
  if (REFERENCE_FLAGS.has(flag.code) && typeof ev.sku === "string") {
    const whose = flag.code === "wrong_item" ? "Catalog reference of the ordered item" : "Catalog reference";
    return [`/v1/staff/catalog/${encodeURIComponent(ev.sku)}/reference`, `${whose} · SKU ${ev.sku}`];
  }
  const other = OTHER_PHOTOS.find(([key]) => typeof ev[key] === "string");
  if (!other) return null;
  const caption = ev.other_return_id ? `${other[1]} · return ${ev.other_return_id}` : other[1];
  return [`/v1/photos/${encodeURIComponent(ev[other[0]])}`, caption];
}

function number(v) {
  return Number.isInteger(v) ? String(v) : Number(v).toFixed(3);
}

/** "distance 3 bits ≤ limit 8" lines for the measures this flag's evidence carries. */
export function measureLines(flag) {
  const ev = flag.evidence || {};
  const rows = (MEASURES[flag.code] || []).filter(([value, limit]) =>
    typeof ev[value] === "number" && typeof ev[limit] === "number");
  return rows.map(([value, limit, relation, unit]) => el("p", {
    class: "measure", "data-value": ev[value], "data-limit": ev[limit], "data-relation": relation,
    text: `${humanLabel(value)} ${number(ev[value])}${unit ? ` ${unit}` : ""} ${relation} threshold ${number(ev[limit])}`,
  }));
}

/** The photo pair of a photo flag, or null. `ctx.thisPhotoId` stands in for a flag that
 * does not name the item's own photo (the wrong-item check reads all of them). */
export function photoPair(flag, ctx) {
  const ev = flag.evidence || {};
  const other = otherSide(flag);
  if (!other) return null;
  const mine = typeof ev[THIS_PHOTO] === "string" ? ev[THIS_PHOTO] : ctx.thisPhotoId;
  const side = (url, caption) => {
    const img = el("img", { alt: caption });
    const figure = el("figure", { class: "evidence-photo" }, img, el("figcaption", { text: caption }));
    if (!url) {
      img.alt = `${caption} (not stored)`;
      return figure;
    }
    imageUrl(url, ctx.key, ctx.images)
      .then((src) => { img.src = src; })
      .catch(() => { img.alt = `${caption} (could not be loaded)`; });
    return figure;
  };
  const pair = el("div", { class: "evidence-pair", "data-flag": flag.code },
    side(mine ? `/v1/photos/${encodeURIComponent(mine)}` : null, "This item's photo"),
    side(other[0], other[1]));
  if (ev.other_return_id && ctx.openReturn) {
    return el("div", {}, pair, el("button", {
      type: "button", class: "btn small open-other", "data-return": ev.other_return_id,
      text: `Open return ${ev.other_return_id}`, onclick: () => ctx.openReturn(ev.other_return_id),
    }));
  }
  return pair;
}

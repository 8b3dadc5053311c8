// fbm_rank web page: send a photo (and an optional title) to the service, show its category and the most similar
// listings, or search listings by words; a click on a listing shows the listings similar to it (by its photos and
// text). A word search and a listing have their own URL (?q=words, ?listing=id): the back button and a shared link
// work. Plain DOM, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const pounds = new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP" });
let lastFile = null;
let photoAnswer = null;   // the last photo search's answer, shown again when the back button returns to it
let shown = { q: null, listing: null };   // what the page shows now, as the URL says it

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function say(text, isError = false) {
  const m = $("message");
  m.textContent = text || "";
  m.classList.toggle("error", isError);
}

// The service answers errors as {"detail": "..."} (or a list of field errors for a 422).
async function errorText(resp) {
  try {
    const body = await resp.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  } catch (e) { /* not JSON */ }
  return `${resp.status} ${resp.statusText}`;
}

function options() {
  const k = parseInt($("k").value, 10);
  const maxPrice = $("max-price").value.trim();
  return { k: Number.isFinite(k) ? k : 12, maxPrice };
}

// How well a result matches, for a buyer: its score next to the best one's (a score alone, e.g. 1.266, means nothing).
function matchLabel(rel) {
  return rel >= 0.999 ? "Best match" : rel >= 0.9 ? "Close match" : rel >= 0.75 ? "Good match" : "Related";
}

function matchBar(score, best) {
  const rel = best > 0 ? Math.max(0, Math.min(1, score / best)) : 1;
  const m = el("span", "match");
  m.title = `${Math.round(100 * rel)}% of the best match`;
  const track = el("span", "track"), fill = el("span", "fill");
  fill.style.width = `${(100 * rel).toFixed(0)}%`;
  track.append(fill);
  m.append(el("span", "label", matchLabel(rel)), track);
  return m;
}

// A listing without a photo, or whose photo does not load, shows a placeholder rather than a broken image.
function noPhoto() {
  const p = el("div", "photo placeholder");
  p.setAttribute("role", "img");
  p.setAttribute("aria-label", "no photo");
  p.append(el("span", "", "No photo"));
  return p;
}

function photo(item) {
  if (!item.image_id) return noPhoto();
  const img = el("img", "photo");
  img.loading = "lazy";
  img.alt = item.name || "listing photo";
  img.onerror = () => img.replaceWith(noPhoto());
  img.src = `/images/${encodeURIComponent(item.image_id)}`;
  return img;
}

function card(item, best) {
  const c = el("button", "card");
  c.type = "button";
  c.dataset.productId = item.product_id;
  c.append(photo(item));
  const body = el("div", "body");
  body.append(el("span", "name", item.name || "(no name)"));
  body.append(el("span", "price", item.price === null || item.price === undefined ? "Price not given" : pounds.format(item.price)));
  body.append(el("span", "location", item.location || ""));
  if (item.category) body.append(el("span", "meta", item.category));
  if (typeof item.score === "number") body.append(matchBar(item.score, best));
  c.append(body);
  c.addEventListener("click", () => go({ q: shown.q, listing: item.product_id }));
  return c;
}

function fillGrid(grid, items) {
  const best = Math.max(...items.map((i) => (typeof i.score === "number" ? i.score : -Infinity)));
  grid.replaceChildren(...items.map((i) => card(i, best)));
  if (!items.length) grid.append(el("p", "message", "No listings match."));
}

function showPrediction(category, probabilities) {
  $("category").textContent = category;
  const rows = Object.entries(probabilities || {}).sort((a, b) => b[1] - a[1]);
  $("probabilities").replaceChildren(...rows.map(([name, p]) => {
    const li = el("li", name === category ? "top" : "");
    li.append(el("span", "name", name), el("span", "value", `${(100 * p).toFixed(1)}%`));
    const track = el("span", "track"), fill = el("span", "fill");
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    track.append(fill);
    li.append(track);
    return li;
  }));
  $("prediction").hidden = false;
}

function showPhotoAnswer(data) {
  showPrediction(data.category, data.probabilities);
  $("results-title").textContent = "Most similar listings";
  fillGrid($("results"), data.results);
  $("results-section").hidden = false;
}

async function search(file) {
  lastFile = file;
  const { k, maxPrice } = options();
  const form = new FormData();
  form.append("image", file);
  form.append("k", String(k));
  if (maxPrice) form.append("max_price", maxPrice);
  if ($("same-category").checked) form.append("same_category", "true");
  const title = $("title-input").value.trim();
  if (title) form.append("q", title);
  say("Looking for similar listings…");
  if (shown.q !== null || shown.listing !== null) history.pushState(null, "", location.pathname);   // a photo has no URL
  shown = { q: null, listing: null };
  $("similar-section").hidden = true;
  try {
    const resp = await fetch("/predict/similar_images", { method: "POST", body: form });
    if (!resp.ok) {
      // results of an earlier photo must not pass for this one's
      photoAnswer = null;
      $("prediction").hidden = true;
      $("results-section").hidden = true;
      say(await errorText(resp), true);
      return;
    }
    photoAnswer = await resp.json();
    showPhotoAnswer(photoAnswer);
    say(`${photoAnswer.results.length} similar listing${photoAnswer.results.length === 1 ? "" : "s"}.`);
  } catch (e) {
    say(`The service did not answer: ${e.message}`, true);
  }
}

async function showSimilar(productId) {
  document.querySelectorAll(".card").forEach((c) => c.classList.toggle("active", c.dataset.productId === productId));
  const { k } = options();
  try {
    const resp = await fetch(`/products/${encodeURIComponent(productId)}/similar?k=${k}`);
    if (!resp.ok) { $("similar-section").hidden = true; say(await errorText(resp), true); return; }
    const data = await resp.json();
    const p = data.product;
    $("similar-title").textContent = `Similar to “${p.name || p.product_id}”`;
    const sel = $("selected");
    sel.replaceChildren();
    const strong = el("strong", "", p.price === null || p.price === undefined ? "Price not given" : pounds.format(p.price));
    sel.append(strong, ` · ${p.location || "no location"} · ${p.category_path || p.root_category || ""}`);
    if (p.description) sel.append("\n" + (p.description.length > 280 ? p.description.slice(0, 280) + "…" : p.description));
    fillGrid($("similar"), data.results);
    $("similar-section").hidden = false;
    $("similar-section").scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (e) {
    say(`The service did not answer: ${e.message}`, true);
  }
}

async function searchWords(q) {
  const { k, maxPrice } = options();
  const params = new URLSearchParams({ q, k: String(k) });
  if (maxPrice) params.set("max_price", maxPrice);
  $("search-input").value = q;
  say("Searching…");
  try {
    const resp = await fetch(`/search?${params}`);
    if (!resp.ok) { $("results-section").hidden = true; say(await errorText(resp), true); return; }
    const data = await resp.json();
    $("prediction").hidden = true;
    $("results-title").textContent = data.query ? `Listings matching “${data.query}”` : "No words to search for";
    fillGrid($("results"), data.results);
    $("results-section").hidden = false;
    say(`${data.results.length} listing${data.results.length === 1 ? "" : "s"} found.`);
  } catch (e) {
    say(`The service did not answer: ${e.message}`, true);
  }
}

// The view the URL names: ?q=words (a word search), ?listing=id (the listings similar to one), both, or neither
// (the last photo's answer, if any). Only what changed is fetched again.
async function showUrl() {
  const params = new URLSearchParams(location.search);
  const want = { q: params.get("q"), listing: params.get("listing") };
  if (params.get("k")) $("k").value = params.get("k");
  if (params.get("max_price")) $("max-price").value = params.get("max_price");
  if (want.q !== shown.q) {
    if (want.q !== null) await searchWords(want.q);
    else if (photoAnswer) showPhotoAnswer(photoAnswer);
    else { $("results-section").hidden = true; $("prediction").hidden = true; say(""); }
  }
  if (want.listing !== null) await showSimilar(want.listing);
  else {
    $("similar-section").hidden = true;
    document.querySelectorAll(".card.active").forEach((c) => c.classList.remove("active"));
  }
  shown = want;
}

// Go to a view: a new history entry, so the back button returns to the view before.
function go({ q = null, listing = null }) {
  const params = new URLSearchParams();
  if (q !== null) {
    params.set("q", q);
    const { k, maxPrice } = options();
    if (k !== 12) params.set("k", String(k));
    if (maxPrice) params.set("max_price", maxPrice);
  }
  if (listing !== null) params.set("listing", listing);
  const query = params.toString();
  history.pushState(null, "", query ? `?${query}` : location.pathname);
  return showUrl();
}

function choose(file) {
  if (!file) return;
  const url = URL.createObjectURL(file);
  const preview = $("preview");
  preview.onload = () => URL.revokeObjectURL(url);
  preview.onerror = () => { URL.revokeObjectURL(url); preview.hidden = true; };
  preview.src = url;
  preview.hidden = false;
  $("drop-hint").textContent = "Drop or click to try another photo";
  search(file);
}

function wire() {
  const zone = $("drop-zone");
  $("photo-input").addEventListener("change", (e) => choose(e.target.files[0]));
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("dragging"); }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.remove("dragging"); }));
  zone.addEventListener("drop", (e) => choose(e.dataTransfer.files[0]));
  $("options").addEventListener("change", () => { if (lastFile && shown.q === null) search(lastFile); });
  $("options").addEventListener("submit", (e) => e.preventDefault());
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); go({ q: $("search-input").value }); });
  $("title-input").addEventListener("change", () => { if (lastFile) search(lastFile); });
  $("close-similar").addEventListener("click", () => go({ q: shown.q }));
  window.addEventListener("popstate", showUrl);
  showUrl();
  fetch("/healthcheck").then((r) => r.json()).then((h) => {
    $("footer").textContent = `${h.model.arch} · ${h.model.n_classes} categories · ` +
      `${h.counts.products.toLocaleString()} listings, ${h.counts.photos.toLocaleString()} photos indexed`;
  }).catch(() => {});
}

document.addEventListener("DOMContentLoaded", wire);

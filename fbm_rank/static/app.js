// fbm_rank web page: send a photo (and an optional title) to the service, show its category and the most similar
// listings, or search listings by words (with facets, sorting and pages); a click on a listing shows the listings
// similar to it (by its photos and text). A word search and a listing have their own URL (?q=words&offset=..&sort=..
// &category=.., ?listing=id): the back button and a shared link work. The browser keeps a person id: opening a
// listing, "Save" and "Hide" are events of that person, and "Recommended for you" comes from them. A listing's own
// view has "Mark sold" and "Remove" for its seller, and "Sell an item" lists a new one (with category suggestions); writes carry the service's token once the page has been given
// it (asked for when a write is refused for want of it, kept for the browser session). Plain DOM, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const pounds = new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP" });
const SEARCH_KEYS = ["q", "k", "offset", "sort", "category", "min_price", "max_price"];   // a word search's URL state
const DEFAULT_K = 12, RECOMMENDED_K = 6, MAX_HIDDEN = 500;
let lastFile = null;
let photoAnswer = null;   // the last photo search's answer, shown again when the back button returns to it
let shown = { search: null, listing: null };   // what the page shows now, as the URL says it (search: its query string)

// Stored in the browser: a random person id (made once), and the listings this person hid (never shown again here).
function stored(key, make) {
  try {
    let v = localStorage.getItem(key);
    if (v === null) { v = make(); localStorage.setItem(key, v); }
    return v;
  } catch (e) { return make(); }   // storage off: a person for this page only
}
const person = stored("fbm_rank.person", () =>
  [...crypto.getRandomValues(new Uint8Array(12))].map((b) => b.toString(16).padStart(2, "0")).join(""));
const hiddenIds = new Set(JSON.parse(stored("fbm_rank.hidden", () => "[]")));

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
// A write (POST, PATCH, DELETE): with the service's token when the page has one; a 401 asks for the token once
// (kept in sessionStorage) and sends the write again, unless `ask` is false (a view event is not worth a question).
const TOKEN_KEY = "fbm_rank.token";
function savedToken() { try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; } }
async function write(url, init = {}, ask = true) {
  const send = (token) => fetch(url, { ...init, headers: { ...(init.headers || {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) } });
  let resp = await send(savedToken());
  if (resp.status === 401 && ask) {
    const token = window.prompt("This service needs its token for changes:");
    if (token) {
      try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* storage off: this write only */ }
      resp = await send(token);
    }
  }
  return resp;
}

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
  const c = el("div", "card");
  c.dataset.productId = item.product_id;
  const open = el("button", "open");
  open.type = "button";
  open.append(photo(item));
  const body = el("div", "body");
  body.append(el("span", "name", item.name || "(no name)"));
  body.append(el("span", "price", item.price === null || item.price === undefined ? "Price not given" : pounds.format(item.price)));
  body.append(el("span", "location", item.location || ""));
  if (item.category) body.append(el("span", "meta", item.category));
  if (typeof item.score === "number") body.append(matchBar(item.score, best));
  open.append(body);
  open.addEventListener("click", () => go({ ...searchState(), listing: item.product_id }));
  const save = el("button", "save", "Save"), hide = el("button", "hide", "Hide");
  save.type = hide.type = "button";
  save.title = "Save: more like this in Recommended for you";
  hide.title = "Hide: never show this listing again";
  save.addEventListener("click", () => { save.disabled = true; save.textContent = "Saved"; postEvent(item.product_id, "save"); });
  hide.addEventListener("click", () => hideListing(item.product_id));
  const actions = el("div", "actions");
  actions.append(save, hide);
  c.append(open, actions);
  return c;
}

function fillGrid(grid, items) {
  items = items.filter((i) => !hiddenIds.has(i.product_id));
  const best = Math.max(...items.map((i) => (typeof i.score === "number" ? i.score : -Infinity)));
  grid.replaceChildren(...items.map((i) => card(i, best)));
  if (!items.length) grid.append(el("p", "message", "No listings match."));
}

// A person's events: posted, then their recommendations fetched again. The body's data-events-posted and
// data-events-pending say how many were posted and how many are not yet reflected in the row (tests wait on them).
let eventsPosted = 0, eventsPending = 0;
async function postEvent(productId, kind) {
  document.body.dataset.eventsPosted = ++eventsPosted;
  document.body.dataset.eventsPending = ++eventsPending;
  try {
    const resp = await write("/events", { method: "POST", headers: { "Content-Type": "application/json" },
                                          body: JSON.stringify({ person, product_id: productId, kind }) }, false);
    if (!resp.ok) say(`${kind}: ${await errorText(resp)}`, true);
  } catch (e) {
    say(`The service did not answer: ${e.message}`, true);
  }
  await showRecommended();
  document.body.dataset.eventsPending = --eventsPending;
}

function hideListing(productId) {
  hiddenIds.add(productId);
  try { localStorage.setItem("fbm_rank.hidden", JSON.stringify([...hiddenIds].slice(-MAX_HIDDEN))); } catch (e) { /* storage off */ }
  document.querySelectorAll(".card").forEach((c) => { if (c.dataset.productId === productId) c.remove(); });
  return postEvent(productId, "hide");
}

let recommendedAsked = 0;   // answers to an older request are dropped
async function showRecommended() {
  const asked = ++recommendedAsked;
  try {
    const resp = await fetch(`/people/${encodeURIComponent(person)}/recommendations?k=${RECOMMENDED_K}`);
    if (!resp.ok || asked !== recommendedAsked) return;
    const results = (await resp.json()).results.filter((i) => !hiddenIds.has(i.product_id));
    if (asked !== recommendedAsked) return;
    fillGrid($("recommended"), results);
    $("for-you").hidden = !results.length;
  } catch (e) { /* the row is extra: the page works without it */ }
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
  searchTools(false);
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
  if (shown.search !== null || shown.listing !== null) history.pushState(null, "", location.pathname);   // a photo has no URL
  shown = { search: null, listing: null };
  $("similar-section").hidden = true;
  searchTools(false);
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

// The seller's buttons on a listing's own view: mark it sold (or available again), and remove it.
function sellerActions(p) {
  const box = el("div", "seller");
  const status = el("span", `status ${p.status}`, p.status === "sold" ? "Sold" : "For sale");
  status.id = "listing-status";
  const toggle = el("button", "", p.status === "sold" ? "Mark available" : "Mark sold");
  toggle.id = "mark-sold";
  const remove = el("button", "danger", "Remove");
  remove.id = "remove-listing";
  toggle.type = remove.type = "button";
  toggle.addEventListener("click", () => changeStatus(p.product_id, p.status === "sold" ? "active" : "sold"));
  remove.addEventListener("click", () => removeListing(p.product_id, p.name));
  box.append(status, toggle, remove);
  return box;
}

async function changeStatus(productId, status) {
  try {
    const resp = await write(`/products/${encodeURIComponent(productId)}`, { method: "PATCH",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ status }) });
    if (!resp.ok) { say(`Mark ${status === "sold" ? "sold" : "available"}: ${await errorText(resp)}`, true); return; }
    say(status === "sold" ? "Marked sold: it is in no search or recommendation now." : "For sale again.");
    document.querySelector("#selected .seller").replaceWith(sellerActions(await resp.json()));
  } catch (e) { say(`The service did not answer: ${e.message}`, true); }
}

async function removeListing(productId, name) {
  if (!window.confirm(`Remove “${name || productId}” for good?`)) return;
  try {
    const resp = await write(`/products/${encodeURIComponent(productId)}`, { method: "DELETE" });
    if (!resp.ok) { say(`Remove: ${await errorText(resp)}`, true); return; }
    document.querySelectorAll(".card").forEach((c) => { if (c.dataset.productId === productId) c.remove(); });
    say("Listing removed.");
    await go(searchState());
  } catch (e) { say(`The service did not answer: ${e.message}`, true); }
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
    sel.append(sellerActions(p));
    fillGrid($("similar"), data.results);
    $("similar-section").hidden = false;
    $("similar-section").scrollIntoView({ behavior: "smooth", block: "start" });
    postEvent(productId, "view");
  } catch (e) {
    say(`The service did not answer: ${e.message}`, true);
  }
}

// The word search the URL names (its keys in SEARCH_KEYS), with defaults: {} when the URL names none.
function searchState(params = new URLSearchParams(location.search)) {
  if (params.get("q") === null) return {};
  const state = { q: params.get("q") };
  SEARCH_KEYS.forEach((key) => { if (params.get(key)) state[key] = params.get(key); });
  return state;
}

// A price band of the facets ("under £10", "£10 to £50", "£500 and over") as a price filter; null: not one.
function bandFilter(band) {
  let m = band.match(/^under £(\d+)$/);
  if (m) return { min_price: undefined, max_price: String(m[1] - 0.01) };
  m = band.match(/^£(\d+) to £(\d+)$/);
  if (m) return { min_price: m[1], max_price: String(m[2] - 0.01) };
  m = band.match(/^£(\d+) and over$/);
  return m ? { min_price: m[1], max_price: undefined } : null;
}

// The facets sidebar: counts by category, price band and region; a category or a band filters the search (again: off).
function showFacets(state, facets) {
  const low = (band) => { const f = bandFilter(band); return f ? Number(f.min_price || 0) : Infinity; };   // "no price" last
  const byPrice = Object.fromEntries(Object.entries(facets.price).sort((a, b) => low(a[0]) - low(b[0])));
  const groups = [["Category", facets.category, (name) => ({ category: state.category === name ? undefined : name })],
                  ["Price", byPrice, (band) => bandFilter(band)],
                  ["Region", facets.location, () => null]];   // the service has no region filter: counts only
  $("facets").replaceChildren(...groups.filter(([, counts]) => Object.keys(counts).length).map(([title, counts, filter]) => {
    const box = el("section", "facet");
    box.append(el("h3", "", title));
    const list = el("ul");
    Object.entries(counts).forEach(([name, n]) => {
      const li = el("li"), change = filter(name);
      const label = change ? el("button", "link", name) : el("span", "", name);
      if (change) {
        const on = title === "Category" ? state.category === name
          : state.min_price === change.min_price && state.max_price === change.max_price;
        li.classList.toggle("on", on);
        const off = { min_price: undefined, max_price: undefined };
        label.type = "button";
        label.addEventListener("click", () => go({ ...state, ...(on && title === "Price" ? off : change), offset: undefined }));
      }
      li.append(label, el("span", "count", n.toLocaleString()));
      list.append(li);
    });
    box.append(list);
    return box;
  }));
}

// The sort, the facets and the pager belong to a word search, not to a photo's answer.
function searchTools(on) {
  ["sort-label", "facets", "pager"].forEach((id) => { $(id).hidden = !on; });
}

function showPager(state, shownCount, total) {
  const k = parseInt(state.k || DEFAULT_K, 10), offset = parseInt(state.offset || 0, 10);
  $("prev-page").disabled = offset === 0;
  $("next-page").disabled = offset + k >= total;
  $("page-info").textContent = total ? `${offset + 1}–${offset + shownCount} of ${total.toLocaleString()}` : "";
  $("prev-page").onclick = () => go({ ...state, offset: offset - k > 0 ? String(offset - k) : undefined });
  $("next-page").onclick = () => go({ ...state, offset: String(offset + k) });
}

async function searchWords(state) {
  const params = new URLSearchParams({ ...state, k: state.k || String(DEFAULT_K), facets: "true" });
  $("search-input").value = state.q;
  $("sort").value = state.sort || "relevance";
  say("Searching…");
  try {
    const resp = await fetch(`/search?${params}`);
    if (!resp.ok) { $("results-section").hidden = true; say(await errorText(resp), true); return; }
    const data = await resp.json();
    $("prediction").hidden = true;
    const filter = state.category ? ` in ${state.category}` : "";
    $("results-title").textContent = data.query ? `Listings matching “${data.query}”${filter}` : "No words to search for";
    fillGrid($("results"), data.results);
    showFacets(state, data.facets);
    showPager(state, data.results.length, data.total);
    searchTools(true);
    $("results-section").hidden = false;
    say(`${data.total} listing${data.total === 1 ? "" : "s"} found.`);
  } catch (e) {
    say(`The service did not answer: ${e.message}`, true);
  }
}

function queryString(state) {
  const params = new URLSearchParams();
  SEARCH_KEYS.forEach((key) => { if (state[key] !== undefined && state[key] !== null) params.set(key, state[key]); });
  return params.toString();
}

// The view the URL names: ?q=words (a word search, with its page, sort and filters), ?listing=id (the listings
// similar to one), both, or neither (the last photo's answer, if any). Only what changed is fetched again.
async function showUrl() {
  const params = new URLSearchParams(location.search);
  const state = searchState(params);
  const want = { search: state.q === undefined ? null : queryString(state), listing: params.get("listing") };
  if (state.k) $("k").value = state.k;
  if (state.max_price) $("max-price").value = state.max_price;
  if (want.search !== shown.search) {
    if (want.search !== null) await searchWords(state);
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

// Go to a view: a word search's state (SEARCH_KEYS) and/or a listing; a new history entry, so the back button
// returns to the view before. Defaults (k 12, offset 0, relevance) stay out of the URL.
function go({ listing = null, ...state }) {
  if (String(state.k) === String(DEFAULT_K)) delete state.k;
  if (String(state.offset) === "0") delete state.offset;
  if (state.sort === "relevance") delete state.sort;
  const params = new URLSearchParams(state.q === undefined ? "" : queryString(state));
  if (listing !== null) params.set("listing", listing);
  const query = params.toString();
  history.pushState(null, "", query ? `?${query}` : location.pathname);
  return showUrl();
}

// A new word search: the options' k and max price, the sort chosen; page 1, no category.
function newSearch(q) {
  const { k, maxPrice } = options();
  return go({ q, k: String(k), max_price: maxPrice || undefined, sort: $("sort").value });
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

// The seller's form: as the title, description and photos are given, POST /predict/listing suggests categories
// (its `suggestions`, the likeliest paths, or else the predicted root category); a click on one fills the category.
let suggestAsked = 0;
async function suggestCategories() {
  const form = new FormData();
  const name = $("sell-name").value.trim(), description = $("sell-description").value.trim();
  if (name) form.append("title", name);
  if (description) form.append("description", description);
  for (const f of $("sell-photos").files) form.append("photos", f);
  if (!name && !description && !$("sell-photos").files.length) { $("category-suggestions").replaceChildren(); return; }
  const asked = ++suggestAsked;
  try {
    const resp = await fetch("/predict/listing", { method: "POST", body: form });
    if (!resp.ok || asked !== suggestAsked) return;
    const answer = await resp.json();
    if (asked !== suggestAsked) return;
    const options = answer.suggestions && answer.suggestions.length ? answer.suggestions
      : [{ category_path: answer.category_path || answer.category, probability: (answer.probabilities || {})[answer.category] }];
    $("category-suggestions").replaceChildren(...options.slice(0, 3).map((s) => {
      const b = el("button", "suggestion", s.category_path);
      b.type = "button";
      b.dataset.path = s.category_path;
      if (typeof s.probability === "number") b.append(el("span", "value", ` ${(100 * s.probability).toFixed(0)}%`));
      b.addEventListener("click", () => { $("sell-category").value = s.category_path; });
      return b;
    }));
    $("category-suggestions").dataset.used = (answer.used || []).join(",");   // what the suggestions were made from
  } catch (e) { /* suggestions are extra: the form works without them */ }
}

async function sell(e) {
  e.preventDefault();
  const form = new FormData($("sell-form"));
  say("Listing it…");
  try {
    const resp = await write("/products", { method: "POST", body: form });
    if (!resp.ok) { say(`Not listed: ${await errorText(resp)}`, true); return; }
    const listed = await resp.json();
    $("sell-form").reset();
    $("category-suggestions").replaceChildren();
    say(`Listed “${listed.name}” in ${listed.category_path || listed.root_category}.`);
    await go({ listing: listed.product_id });
  } catch (err) { say(`The service did not answer: ${err.message}`, true); }
}

function wire() {
  const zone = $("drop-zone");
  $("photo-input").addEventListener("change", (e) => choose(e.target.files[0]));
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("dragging"); }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.remove("dragging"); }));
  zone.addEventListener("drop", (e) => choose(e.dataTransfer.files[0]));
  $("options").addEventListener("change", () => {
    const { k, maxPrice } = options();
    if (shown.search !== null) go({ ...searchState(), k: String(k), max_price: maxPrice || undefined, offset: undefined });
    else if (lastFile) search(lastFile);
  });
  $("options").addEventListener("submit", (e) => e.preventDefault());
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); newSearch($("search-input").value); });
  $("sort").addEventListener("change", () => go({ ...searchState(), sort: $("sort").value, offset: undefined }));
  $("title-input").addEventListener("change", () => { if (lastFile) search(lastFile); });
  $("close-similar").addEventListener("click", () => go(searchState()));
  ["sell-name", "sell-description", "sell-photos"].forEach((id) => $(id).addEventListener("change", suggestCategories));
  $("sell-form").addEventListener("submit", sell);
  window.addEventListener("popstate", showUrl);
  showUrl();
  showRecommended();
  fetch("/healthcheck").then((r) => r.json()).then((h) => {
    $("footer").textContent = `${h.model.arch} · ${h.model.n_classes} categories · ` +
      `${h.counts.products.toLocaleString()} listings, ${h.counts.photos.toLocaleString()} photos indexed`;
  }).catch(() => {});
}

document.addEventListener("DOMContentLoaded", wire);

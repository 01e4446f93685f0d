// scrip's dashboard: every figure comes from the HTTP API of the server that
// serves this file, called with the key the operator signed in with. Data is
// only ever put into the page as text, never as markup.
"use strict";

const keyStorage = "scrip.key";
// noticeStorage carries why the page signed out across its reload.
const noticeStorage = "scrip.notice";
const pageSize = 20;
const healthEvery = 15000; // ms

// base is the server's root as this page sees it, so that the API is
// found behind a proxy that mounts the server under a path of its own.
const base = new URL("../", location.href);

function url(path) {
  return new URL(path.replace(/^\//, ""), base);
}

const $ = (id) => document.getElementById(id);

// parse reads a JSON body keeping every number as the text the server sent,
// where the browser can give it, so that credits show exactly as the
// ledger holds them (a float would round 18 significant digits).
function parse(text) {
  return JSON.parse(text, (key, value, context) =>
    typeof value === "number" && context && typeof context.source === "string" ? context.source : value);
}

// message says what an error body of the API means.
function message(status, body) {
  if (!body) return `HTTP ${status}`;
  if (body.code === "insufficient_credits") {
    return `insufficient credits: ${body.required} required, ${body.available} available`;
  }
  return body.detail || body.title || `HTTP ${status}`;
}

class APIError extends Error {
  constructor(status, body) {
    super(message(status, body));
    this.status = status;
    this.code = (body && body.code) || "";
  }
}

// rawNumbers is a JSON.parse reviver that keeps each number as the text the
// server sent, for JSON.stringify to write back as it was.
function rawNumbers(key, value, context) {
  return typeof value === "number" && context && typeof context.source === "string" && JSON.rawJSON
    ? JSON.rawJSON(context.source) : value;
}

// newKey returns a fresh Idempotency-Key. (crypto.randomUUID exists only
// in secure contexts, and a server on a private network may be reached
// over plain HTTP.)
function newKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return "dashboard-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// api calls the API and returns its answer, parsed. A POST goes with
// idempotencyKey, or a fresh one.
async function api(method, path, body, idempotencyKey) {
  const text = await request(method, path, body, idempotencyKey);
  return text ? parse(text) : null;
}

// request calls the API and returns its answer's text.
async function request(method, path, body, idempotencyKey) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(keyStorage) };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method === "POST") headers["Idempotency-Key"] = idempotencyKey || newKey();
  const resp = await fetch(url(path), init);
  const text = await resp.text();
  if (!resp.ok) {
    let data = null;
    try {
      data = text ? parse(text) : null;
    } catch {
      data = null;
    }
    throw new APIError(resp.status, data);
  }
  return text;
}

function show(el, on) {
  el.hidden = !on;
}

function say(err) {
  const el = $("error");
  if (!err) {
    show(el, false);
    return;
  }
  el.textContent = err.code ? `${err.message} (${err.code})` : String(err.message || err);
  show(el, true);
}

function done(text) {
  $("done").textContent = text;
  show($("done"), true);
}

// row appends a table row of text cells.
function row(tbody, cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c === undefined || c === null ? "" : String(c);
    tr.appendChild(td);
  }
  tbody.appendChild(tr);
  return tr;
}

function when(t) {
  if (!t) return "";
  const d = new Date(t);
  return isNaN(d) ? t : d.toLocaleString();
}

// --- signing in -------------------------------------------------------------

async function signIn(key) {
  sessionStorage.setItem(keyStorage, key);
  try {
    const [cat, me] = await Promise.all([api("GET", "/v1/catalog"), api("GET", "/v1/me")]);
    $("catalog-name").textContent = `${cat.name} · ${cat.version}`;
    catalog.current = cat;
    applyScopes(me);
  } catch (err) {
    sessionStorage.removeItem(keyStorage);
    throw err;
  }
  show($("signin"), false);
  show($("app"), true);
  show($("signout"), true);
  await loadCatalog();
}

// A scope allows those below it: admin includes charge, charge read.
const scopeRanks = { read: 1, charge: 2, admin: 3 };

function allows(scopes, want) {
  return scopes.some((s) => (scopeRanks[s] || 0) >= scopeRanks[want]);
}

// applyScopes shows what the key may do and leaves out the rest: an element
// with data-scope needs that scope, one with data-lacks says what a key
// without it cannot do. The API refuses those calls anyway.
function applyScopes(me) {
  const scopes = me.scopes || [];
  for (const el of document.querySelectorAll("[data-scope]")) show(el, allows(scopes, el.dataset.scope));
  for (const el of document.querySelectorAll("[data-lacks]")) show(el, !allows(scopes, el.dataset.lacks));
  const who = me.object === "account_token" ? `token for ${me.account_id}` : me.name || me.id;
  $("whoami").textContent = `${who} · ${scopes.join(", ")}`;
}

function signOut(notice) {
  sessionStorage.removeItem(keyStorage);
  if (notice) sessionStorage.setItem(noticeStorage, notice);
  location.reload();
}

async function health() {
  const el = $("health");
  try {
    const resp = await fetch(url("/readyz"));
    const body = parse(await resp.text());
    const failing = Object.entries(body.checks || {}).filter(([, v]) => v !== "ok").map(([k, v]) => `${k} ${v}`);
    el.textContent = resp.ok ? "ready" : "not ready: " + failing.join(", ");
    el.className = resp.ok ? "pill ok" : "pill bad";
  } catch {
    el.textContent = "unreachable";
    el.className = "pill bad";
  }
}

// --- accounts ---------------------------------------------------------------

// account is the account the page shows. Each lookup takes the next
// generation; an answer that arrives for an older one is dropped, so the
// page never mixes two accounts, and the forms act on the one shown.
const account = { id: "", missing: "", cursor: "", generation: 0 };

const accountPath = (id) => `/v1/accounts/${encodeURIComponent(id)}`;

async function lookUp(id) {
  show($("done"), false);
  const generation = ++account.generation;
  let a;
  try {
    a = await api("GET", accountPath(id));
  } catch (err) {
    if (generation !== account.generation) return;
    show($("account"), false);
    account.id = "";
    if (err.status === 404) {
      account.missing = id;
      $("missing-id").textContent = id;
      show($("not-found"), true);
      return;
    }
    throw err;
  }
  const [b, holds, page, sub] = await Promise.all([
    api("GET", accountPath(id) + "/balance"), api("GET", accountPath(id) + "/holds"), transactions(id, ""), subscription(id),
  ]);
  if (generation !== account.generation) return;
  account.id = id;
  show($("not-found"), false);
  $("account-title").textContent = a.id;
  $("account-created").textContent = when(a.created_at);
  const meta = Object.entries(a.metadata || {}).map(([k, v]) => `${k}=${v}`).join(" · ");
  $("account-metadata").textContent = meta ? "Metadata: " + meta : "";
  $("subscription").textContent = sub
    ? `Plan ${sub.plan_name || sub.plan} (${sub.status}), cycle ${sub.cycle}, this period ends ${when(sub.current_period_end)}`
    : "No plan.";
  showAccount(b, holds, page);
  show($("account"), true);
}

// refresh reads the shown account's balance, open holds and the newest
// page of its journal again, all before any is shown.
async function refresh() {
  const id = account.id;
  const generation = account.generation;
  const [b, holds, page] = await Promise.all([
    api("GET", accountPath(id) + "/balance"), api("GET", accountPath(id) + "/holds"), transactions(id, ""),
  ]);
  if (generation !== account.generation) return;
  showAccount(b, holds, page);
}

function showAccount(b, holds, page) {
  $("available").textContent = b.available;
  $("held").textContent = b.held;
  $("balance-as-of").textContent = when(b.as_of);
  const kinds = $("by-kind").tBodies[0];
  kinds.replaceChildren();
  for (const [k, v] of Object.entries(b.by_kind || {})) row(kinds, [k, v]);
  const grants = $("grants").tBodies[0];
  grants.replaceChildren();
  for (const g of b.grants || []) {
    row(grants, [g.id, g.kind, g.remaining, g.amount, g.priority, g.expires_at ? when(g.expires_at) : "never",
      g.source && g.source.type]);
  }
  const open = $("holds").tBodies[0];
  open.replaceChildren();
  for (const h of holds.data) {
    const ref = h.ref || {};
    row(open, [h.id, h.amount, ref.job, ref.action, when(h.created_at), when(h.expires_at)]);
  }
  $("holds-none").textContent = holds.data.length ? "" : "No job holds credits.";
  $("transactions").tBodies[0].replaceChildren();
  showTransactions(page);
}

// browse is the list of every account, in id order, a page at a time.
const browse = { cursor: "" };

async function listAccounts(more) {
  const q = new URLSearchParams({ limit: String(pageSize) });
  if (more) q.set("starting_after", browse.cursor);
  const page = await api("GET", "/v1/accounts?" + q);
  const body = $("all-accounts").tBodies[0];
  if (!more) body.replaceChildren();
  for (const a of page.data) {
    const tr = row(body, ["", when(a.created_at)]);
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.textContent = a.id;
    open.addEventListener("click", guarded(() => {
      $("account-id").value = a.id;
      return lookUp(a.id);
    }));
    tr.firstChild.appendChild(open);
  }
  browse.cursor = page.has_more ? page.next_cursor : "";
  show($("more-accounts"), page.has_more);
}

// subscription reads the account's plan; null when it has none.
async function subscription(id) {
  try {
    return await api("GET", accountPath(id) + "/subscription");
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

// describe says in a few words what a journal transaction was for.
function describe(t) {
  const ref = t.ref || {};
  return ref.action || t.reason || ref.job || t.grant_id || t.hold_id || t.charge_id || "";
}

// transactions reads a page of an account's journal, newest first, after
// cursor.
function transactions(id, cursor) {
  let path = `${accountPath(id)}/transactions?limit=${pageSize}`;
  if (cursor) path += `&starting_after=${encodeURIComponent(cursor)}`;
  return api("GET", path);
}

// showTransactions appends a page to the journal's table.
function showTransactions(page) {
  const body = $("transactions").tBodies[0];
  // available_after is absent on rows an upgraded database wrote before
  // the journal recorded it: an empty cell.
  for (const t of page.data) row(body, [t.seq, when(t.created_at), t.type, t.amount, t.available_after, describe(t), t.id]);
  account.cursor = page.has_more ? page.next_cursor : "";
  show($("older"), page.has_more);
}

async function older() {
  const { id, generation, cursor } = account;
  const page = await transactions(id, cursor);
  // A lookup or a refresh meanwhile has redrawn the table.
  if (generation !== account.generation || cursor !== account.cursor) return;
  showTransactions(page);
}

// instant turns a datetime-local value (the browser's time zone) into the
// API's RFC 3339.
function instant(local) {
  return local ? new Date(local).toISOString() : undefined;
}

async function grant(idempotencyKey) {
  const id = account.id;
  const body = { kind: $("grant-kind").value, amount: $("grant-amount").value.trim() };
  const expires = instant($("grant-expires").value);
  if (expires) body.expires_at = expires;
  const g = await api("POST", accountPath(id) + "/grants", body, idempotencyKey);
  $("grant").reset();
  await refresh();
  done(`Granted ${g.amount} ${g.kind} credits to ${id} (${g.id}); available ${g.available}.`);
}

async function adjust(idempotencyKey) {
  const id = account.id;
  const body = { amount: $("adjust-amount").value.trim(), reason: $("adjust-reason").value };
  const r = await api("POST", accountPath(id) + "/adjustments", body, idempotencyKey);
  $("adjust").reset();
  await refresh();
  done(`Adjusted ${id} by ${body.amount}; available ${r.available}.`);
}

async function createAccount() {
  const id = account.missing;
  await api("POST", "/v1/accounts", { id });
  await lookUp(id);
  done(`Created account ${id}.`);
}

// --- catalog ----------------------------------------------------------------

const catalog = { current: null, actions: [] };

async function loadCatalog() {
  const list = await api("GET", "/v1/catalog/actions");
  catalog.actions = list.data;
  const cat = $("category");
  cat.replaceChildren(new Option("all", ""));
  for (const c of catalog.current.categories || []) cat.add(new Option(c.name, c.id));
  const action = $("quote-action");
  action.replaceChildren();
  for (const a of catalog.actions) action.add(new Option(a.label || a.id, a.id));
  const plan = $("quote-plan");
  plan.replaceChildren(new Option("none", ""));
  for (const p of catalog.current.plans || []) plan.add(new Option(p.name || p.code, p.code));
  showActions();
}

function showActions() {
  const only = $("category").value;
  const body = $("actions").tBodies[0];
  body.replaceChildren();
  for (const a of catalog.actions) {
    if (only && a.category !== only) continue;
    const params = (a.params || []).map((p) => p.name || p.id).filter(Boolean).join(", ");
    const credits = a.credits === null || a.credits === undefined ? "" : a.fixed ? a.credits : `from ${a.credits}`;
    row(body, [a.id, a.name, a.category, credits, params]);
  }
}

async function quote() {
  let params;
  try {
    params = JSON.parse($("quote-params").value || "{}");
  } catch (err) {
    throw new APIError(0, { detail: `parameters are not JSON: ${err.message}`, code: "invalid" });
  }
  const body = { action: $("quote-action").value, params };
  if ($("quote-plan").value) body.plan = $("quote-plan").value;
  const q = await api("POST", "/v1/quotes", body);
  $("quote-label").textContent = q.label || q.action;
  $("quote-credits").textContent = q.credits;
  $("quote-reserve").textContent = q.reserve;
  const rows = $("quote-breakdown").tBodies[0];
  rows.replaceChildren();
  for (const b of q.breakdown || []) row(rows, [b.rule, b.detail, b.credits]);
  show($("quote-result"), true);
}

// --- events -----------------------------------------------------------------

// events is what the Events tab lists: each listing takes the next
// generation, with its filter and the cursor of its next page ("" when
// there is none); an answer for an older listing is dropped. showing counts
// the events opened, so that only the last one opened is shown.
const events = { generation: 0, filter: {}, cursor: "", shown: "", showing: 0 };

async function showEndpoints() {
  const list = await api("GET", "/v1/event-endpoints");
  const body = $("endpoints").tBodies[0];
  body.replaceChildren();
  for (const e of list.data) {
    row(body, [e.id, e.url, (e.types || []).join(", "), when(e.created_at), e.disabled ? "disabled" : "active"]);
  }
}

// listEvents lists the newest events that pass the filter, or with more
// the page after those listed.
async function listEvents(more) {
  if (!more) {
    events.generation++;
    events.cursor = "";
    $("events").tBodies[0].replaceChildren();
    $("events-count").textContent = "";
    show($("older-events"), false);
  }
  const { generation, filter, cursor } = events;
  const q = new URLSearchParams({ limit: String(pageSize) });
  for (const [k, v] of Object.entries(filter)) if (v) q.set(k, v);
  if (more) q.set("starting_after", cursor);
  const [list] = await Promise.all([api("GET", "/v1/events?" + q), more ? null : showEndpoints()]);
  if (generation !== events.generation || cursor !== events.cursor) return;
  const body = $("events").tBodies[0];
  for (const e of list.data) {
    const tr = row(body, [when(e.created_at), e.type, e.account_id, ""]);
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.textContent = e.id;
    open.addEventListener("click", guarded(() => showEvent(e.id)));
    tr.lastChild.appendChild(open);
  }
  events.cursor = list.has_more ? list.next_cursor : "";
  show($("older-events"), list.has_more);
  const n = body.rows.length;
  $("events-count").textContent = (n === 1 ? "1 event" : `${n} events`) + (list.has_more ? ", and older ones" : "");
}

async function showEvent(id) {
  const showing = ++events.showing;
  const text = await request("GET", `/v1/events/${encodeURIComponent(id)}`);
  if (showing !== events.showing) return;
  const d = parse(text);
  events.shown = id;
  $("event-title").textContent = `${d.type} · ${d.id}`;
  $("event-data").textContent = JSON.stringify(JSON.parse(text, rawNumbers).data, null, 2);
  const body = $("deliveries").tBodies[0];
  body.replaceChildren();
  for (const v of d.deliveries) {
    const answer = [v.last_status, v.last_error].filter(Boolean).join(": ");
    row(body, [v.endpoint_id, v.status, v.attempts, answer, when(v.next_at), when(v.delivered_at)]);
  }
  show($("retry-event"), d.deliveries.some((v) => v.status !== "delivered"));
  show($("event"), true);
}

async function retryEvent() {
  const id = events.shown;
  const r = await api("POST", `/v1/events/${encodeURIComponent(id)}/retry`, {});
  await showEvent(id);
  $("event-title").textContent += ` — ${r.retried} deliveries due again`;
}

// --- ledger -----------------------------------------------------------------

async function verify() {
  const button = $("verify");
  button.textContent = "Verifying…";
  try {
    const r = await api("GET", "/v1/admin/verify");
    $("verify-summary").textContent = r.ok
      ? `OK: ${r.accounts} accounts and ${r.transactions} transactions agree with their journals.`
      : `${r.problems.length} problems in ${r.accounts} accounts and ${r.transactions} transactions.`;
    $("verify-summary").className = r.ok ? "ok" : "error";
    const totals = $("verify-totals").tBodies[0];
    totals.replaceChildren();
    for (const [k, v] of Object.entries(r.totals || {})) row(totals, [k, v]);
    const problems = $("verify-problems");
    problems.replaceChildren();
    for (const p of r.problems || []) {
      const li = document.createElement("li");
      li.textContent = p;
      problems.appendChild(li);
    }
    show($("verify-result"), true);
  } finally {
    button.textContent = "Verify";
  }
}

// --- wiring -----------------------------------------------------------------

// guarded runs an action of the page and shows its error, if any.
function guarded(fn) {
  return async (event) => {
    if (event) event.preventDefault();
    say(null);
    try {
      await fn(event);
    } catch (err) {
      if (err.status === 401) {
        signOut("The server no longer accepts your key; sign in again.");
        return;
      }
      say(err);
    }
  };
}

// once makes fn the action of a form or button that runs one request at a
// time: a second click while one runs does nothing. A form's writes go
// with one Idempotency-Key until the server has answered them for good
// (not with a 5xx or a lost connection) or the form is changed, so a
// retry after a lost answer never applies a write twice.
function once(el, fn) {
  const button = el.tagName === "FORM" ? el.querySelector("button[type=submit]") : el;
  let busy = false;
  let key = "";
  if (el.tagName === "FORM") el.addEventListener("input", () => { key = ""; });
  el.addEventListener(el.tagName === "FORM" ? "submit" : "click", guarded(async () => {
    if (busy) return;
    busy = true;
    button.disabled = true;
    key = key || newKey();
    try {
      await fn(key);
      key = "";
    } catch (err) {
      if (err.status && err.status < 500) key = "";
      throw err;
    } finally {
      busy = false;
      button.disabled = false;
    }
  }));
}

function tab(name) {
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const t of ["accounts", "catalog", "events", "ledger"]) show($("tab-" + t), t === name);
  say(null);
  if (name === "events") guarded(() => listEvents(false))();
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const err = $("signin-error");
    show(err, false);
    try {
      await signIn($("key").value.trim());
      $("key").value = "";
    } catch (e) {
      err.textContent = e.status === 401 ? "That key was refused." : `Could not sign in: ${e.message}`;
      show(err, true);
    }
  });
  $("signout").addEventListener("click", () => signOut());
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => tab(b.dataset.tab));
  $("lookup").addEventListener("submit", guarded(() => lookUp($("account-id").value.trim())));
  once($("create-account"), createAccount);
  $("browse").addEventListener("toggle", () => {
    if ($("browse").open) guarded(() => listAccounts(false))();
  });
  once($("more-accounts"), () => listAccounts(true));
  once($("older"), older);
  once($("grant"), grant);
  once($("adjust"), adjust);
  $("category").addEventListener("change", showActions);
  $("quote").addEventListener("submit", guarded(quote));
  once($("verify"), verify);
  $("event-filter").addEventListener("submit", guarded(() => {
    events.filter = { account_id: $("event-account").value.trim(), type: $("event-type").value.trim() };
    return listEvents(false);
  }));
  once($("older-events"), () => listEvents(true));
  once($("retry-event"), retryEvent);

  health();
  setInterval(health, healthEvery);
  const notice = sessionStorage.getItem(noticeStorage);
  sessionStorage.removeItem(noticeStorage);
  if (notice) {
    $("signin-error").textContent = notice;
    show($("signin-error"), true);
  }
  const key = sessionStorage.getItem(keyStorage);
  if (key) {
    signIn(key).catch((e) => {
      $("signin-error").textContent = e.status === 401
        ? "The server no longer accepts your key; sign in again."
        : `Could not sign in: ${e.message}`;
      show($("signin-error"), true);
    });
  }
});

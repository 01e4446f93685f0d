// scrip's dashboard: every figure comes from the HTTP API of the server that
// serves this file, called with the key the operator signed in with. Data is
// only ever put into the page as text, never as markup.
"use strict";

const keyStorage = "scrip.key";
const pageSize = 20;

const $ = (id) => document.getElementById(id);

// parse reads a JSON body keeping every number as the text the server sent,
// where the browser can give it, so that credits show exactly as the
// ledger holds them (a float would round 18 significant digits).
function parse(text) {
  return JSON.parse(text, (key, value, context) =>
    typeof value === "number" && context && typeof context.source === "string" ? context.source : value);
}

class APIError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "";
  }
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(keyStorage) };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
    if (method === "POST") headers["Idempotency-Key"] = "dashboard-" + crypto.randomUUID();
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try {
    data = text ? parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) throw new APIError(resp.status, data);
  return data;
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
    const cat = await api("GET", "/v1/catalog");
    $("catalog-name").textContent = `${cat.name} · ${cat.version}`;
    catalog.current = cat;
  } catch (err) {
    sessionStorage.removeItem(keyStorage);
    throw err;
  }
  show($("signin"), false);
  show($("app"), true);
  show($("signout"), true);
  await loadCatalog();
}

function signOut() {
  sessionStorage.removeItem(keyStorage);
  location.reload();
}

async function health() {
  const el = $("health");
  try {
    const resp = await fetch("/readyz");
    const body = parse(await resp.text());
    el.textContent = resp.ok ? "ready" : "not ready: " + Object.entries(body.checks || {}).filter(([, v]) => v !== "ok").map(([k, v]) => `${k} ${v}`).join(", ");
    el.className = resp.ok ? "pill ok" : "pill bad";
  } catch {
    el.textContent = "unreachable";
    el.className = "pill bad";
  }
}

// --- accounts ---------------------------------------------------------------

const account = { id: "", cursor: "" };

async function lookUp(id) {
  say(null);
  show($("done"), false);
  account.id = id;
  let a;
  try {
    a = await api("GET", `/v1/accounts/${encodeURIComponent(id)}`);
  } catch (err) {
    show($("account"), false);
    if (err.status === 404) {
      $("missing-id").textContent = id;
      show($("not-found"), true);
      return;
    }
    throw err;
  }
  show($("not-found"), false);
  $("account-title").textContent = a.id;
  $("account-created").textContent = when(a.created_at);
  await Promise.all([refresh(), showSubscription()]);
  show($("account"), true);
}

// refresh shows the account's balance and the newest page of its journal,
// both read before either is shown, so the page never shows one without
// the other.
async function refresh() {
  const [b, page] = await Promise.all([
    api("GET", `/v1/accounts/${encodeURIComponent(account.id)}/balance`),
    transactions(""),
  ]);
  showBalance(b);
  $("transactions").tBodies[0].replaceChildren();
  showTransactions(page);
}

function showBalance(b) {
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
}

async function showSubscription() {
  const el = $("subscription");
  try {
    const s = await api("GET", `/v1/accounts/${encodeURIComponent(account.id)}/subscription`);
    el.textContent = `Plan ${s.plan_name || s.plan} (${s.status}), cycle ${s.cycle}, this period ends ${when(s.current_period_end)}`;
  } catch (err) {
    if (err.status !== 404) throw err;
    el.textContent = "No plan.";
  }
}

// describe says in a few words what a journal transaction was for.
function describe(t) {
  const ref = t.ref || {};
  return ref.action || t.reason || ref.job || t.grant_id || t.hold_id || t.charge_id || "";
}

// transactions reads a page of the journal, newest first, after cursor.
function transactions(cursor) {
  let path = `/v1/accounts/${encodeURIComponent(account.id)}/transactions?limit=${pageSize}`;
  if (cursor) path += `&starting_after=${encodeURIComponent(cursor)}`;
  return api("GET", path);
}

// showTransactions appends a page to the journal's table.
function showTransactions(page) {
  const body = $("transactions").tBodies[0];
  for (const t of page.data) row(body, [t.seq, when(t.created_at), t.type, t.amount, describe(t), t.id]);
  account.cursor = page.has_more ? page.next_cursor : "";
  show($("older"), page.has_more);
}

// instant turns a datetime-local value (the browser's time zone) into the
// API's RFC 3339.
function instant(local) {
  return local ? new Date(local).toISOString() : undefined;
}

async function grant() {
  const body = { kind: $("grant-kind").value, amount: $("grant-amount").value.trim() };
  const expires = instant($("grant-expires").value);
  if (expires) body.expires_at = expires;
  const g = await api("POST", `/v1/accounts/${encodeURIComponent(account.id)}/grants`, body);
  await refresh();
  $("grant").reset();
  done(`Granted ${g.amount} ${g.kind} credits (${g.id}); available ${g.available}.`);
}

async function adjust() {
  const body = { amount: $("adjust-amount").value.trim(), reason: $("adjust-reason").value };
  const r = await api("POST", `/v1/accounts/${encodeURIComponent(account.id)}/adjustments`, body);
  await refresh();
  $("adjust").reset();
  done(`Adjusted by ${body.amount}; available ${r.available}.`);
}

async function createAccount() {
  await api("POST", "/v1/accounts", { id: account.id });
  await lookUp(account.id);
  done(`Created account ${account.id}.`);
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
    row(body, [a.id, a.name, a.category, a.fixed ? a.credits : `from ${a.credits}`, params]);
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

// --- ledger -----------------------------------------------------------------

async function verify() {
  const button = $("verify");
  button.disabled = true;
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
    button.disabled = false;
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
        signOut();
        return;
      }
      say(err);
    }
  };
}

function tab(name) {
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const t of ["accounts", "catalog", "ledger"]) show($("tab-" + t), t === name);
  say(null);
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
  $("signout").addEventListener("click", signOut);
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => tab(b.dataset.tab));
  $("lookup").addEventListener("submit", guarded(() => lookUp($("account-id").value.trim())));
  $("create-account").addEventListener("click", guarded(createAccount));
  $("older").addEventListener("click", guarded(async () => showTransactions(await transactions(account.cursor))));
  $("grant").addEventListener("submit", guarded(grant));
  $("adjust").addEventListener("submit", guarded(adjust));
  $("category").addEventListener("change", showActions);
  $("quote").addEventListener("submit", guarded(quote));
  $("verify").addEventListener("click", guarded(verify));

  health();
  const key = sessionStorage.getItem(keyStorage);
  if (key) {
    signIn(key).catch(() => show($("signin"), true));
  }
});

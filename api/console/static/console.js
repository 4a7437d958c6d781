/* pnc-pki operator console. Vanilla JS, no build step, no external resources.
 *
 * Security model: the API token lives in sessionStorage (this tab only) and is sent as a Bearer header; every value
 * from the API is inserted as text (never parsed as markup), so data cannot inject markup. The server's CSP forbids inline
 * script and any non-self origin.
 *
 * Views that depend on endpoints from other parts of the service (revocation, stations/outbox, jobs) treat
 * "no such route" (404 with problem code Http404, or 405) as "not available on this server" and say so, so the
 * console works on any build and lights up when those endpoints exist.
 */
"use strict";

const TOKEN_KEY = "pnc.console.token";
const PAGE = 50;

/* Every API path the console calls, in one place. */
const API = {
  cas: "/api/v1/cas",
  certificates: "/api/v1/certificates",
  certificate: (id) => `/api/v1/certificates/${enc(id)}`,
  download: (id, format, chain) => `/api/v1/certificates/${enc(id)}/download?format=${format}&chain=${chain}`,
  histogram: "/api/v1/certificates/expiry-histogram",
  revoke: (id) => `/api/v1/certificates/${enc(id)}/revoke`,
  stations: "/api/v1/stations",
  station: (id) => `/api/v1/stations/${enc(id)}`,
  stationInventory: (id) => `/api/v1/stations/${enc(id)}/installed-certificates`,
  stationOutbox: (id) => `/api/v1/stations/${enc(id)}/outbox`,
  stationCommand: (id) => `/api/v1/stations/${enc(id)}/commands`,
  jobs: "/api/v1/jobs",
  job: (id) => `/api/v1/jobs/${enc(id)}`,
};

/* pki.profiles.CertKind values (a test keeps this list equal to the enum). */
const KINDS = [
  "v2g-root", "cpo-sub1", "cpo-sub2", "secc-leaf", "cps-sub1", "cps-sub2", "cps-leaf", "mo-root", "mo-sub1",
  "mo-sub2", "contract-leaf", "oem-root", "oem-sub1", "oem-sub2", "oem-prov-leaf", "csms-root", "csms-sub",
  "csms-server", "station-client", "ocsp-signer",
];

/* RFC 5280 CRLReason names accepted by the revocation endpoint (removeFromCRL is a release, not a revocation). */
const REASONS = [
  ["unspecified", "Unspecified"], ["keyCompromise", "Key compromise"], ["cACompromise", "CA compromise"],
  ["affiliationChanged", "Affiliation changed"], ["superseded", "Superseded"],
  ["cessationOfOperation", "Cessation of operation"], ["certificateHold", "Certificate hold (reversible)"],
  ["privilegeWithdrawn", "Privilege withdrawn"],
];

/* Renewal triggers per OCPP version: [label, outbox command]. OCPP 1.6 renews its charge-point certificate with
 * ExtendedTriggerMessage and its V2G certificate through the Plug & Charge DataTransfer wrapper (pnc: true). */
const TRIGGERS = {
  "1.6": [
    ["Charge point certificate (ExtendedTriggerMessage SignChargePointCertificate)",
      { action: "ExtendedTriggerMessage", payload: { requestedMessage: "SignChargePointCertificate" } }],
    ["V2G certificate (PnC DataTransfer TriggerMessage SignV2GCertificate)",
      { action: "TriggerMessage", payload: { requestedMessage: "SignV2GCertificate" }, pnc: true }],
  ],
  "2.0.1": ["SignChargingStationCertificate", "SignV2GCertificate", "SignCombinedCertificate"].map((m) =>
    [`${m} (TriggerMessage)`, { action: "TriggerMessage", payload: { requestedMessage: m } }]),
};
TRIGGERS["2.1"] = [...TRIGGERS["2.0.1"],
  ["SignV2G20Certificate (TriggerMessage)", { action: "TriggerMessage", payload: { requestedMessage: "SignV2G20Certificate" } }]];

const PALETTE = ["#0b5cad", "#e66100", "#1e7b34", "#9141ac", "#c01c28", "#26a3a3", "#986a44", "#d6a300",
  "#5e5c64", "#e01b8f", "#3584e4", "#57e389"];

function enc(s) { return encodeURIComponent(String(s)); }

/* ---------------------------------------------------------------------------------------------------------- */
/* API access                                                                                                   */

class ApiError extends Error {
  constructor(status, problem, path) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.path = path;
  }
}

class NotAvailable extends ApiError {
  get route() { return this.path.split("?")[0]; }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${token() || ""}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
    credentials: "omit",
  });
  if (resp.ok) return raw ? resp : resp.status === 204 ? null : resp.json();
  let problem = null;
  try { problem = await resp.json(); } catch (_) { /* not JSON */ }
  if (resp.status === 401) {
    signOut("Your token was refused (invalid, expired or revoked). Sign in again.");
    throw new ApiError(401, problem, path);
  }
  const code = problem && problem.code;
  if ((resp.status === 404 && code === "Http404") || resp.status === 405) {
    throw new NotAvailable(resp.status, problem, path);
  }
  throw new ApiError(resp.status, problem, path);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* DOM helpers: text only, never HTML from data                                                                 */

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  append(el, children);
  return el;
}

function badge(value) { return value ? h("span", { class: `badge ${value}` }, value) : "—"; }

function fmtDate(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return h("time", { datetime: d.toISOString() }, d.toISOString().slice(0, 16).replace("T", " ") + " UTC");
}

function relDays(iso) {
  if (!iso) return "";
  const days = Math.round((new Date(iso).getTime() - Date.now()) / 86400000);
  return days >= 0 ? `in ${days} d` : `${-days} d ago`;
}

function fields(pairs) {
  const dl = h("dl", { class: "fields" });
  for (const [k, v] of pairs) dl.append(h("dt", {}, k), h("dd", {}, v === null || v === undefined || v === "" ? "—" : v));
  return dl;
}

function table(columns, rows, { caption, empty = "Nothing to show." } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)));
  const body = rows.map((r) => h("tr", {}, columns.map((c) => {
    const v = c.render ? c.render(r) : r[c.key];
    return h("td", { class: [c.num ? "num" : "", c.mono ? "mono" : ""].join(" ").trim() || null },
      v === null || v === undefined || v === "" ? "—" : v);
  })));
  return h("div", { class: "table-wrap" },
    h("table", {}, caption ? h("caption", {}, caption) : null, h("thead", {}, head), h("tbody", {}, body)));
}

/* Columns for records whose exact shape is owned by another part of the service: the preferred keys that are
 * present, otherwise the first scalar keys, so a renamed field shows up instead of vanishing. */
function columnsFor(rows, preferred, max = 8) {
  const keys = new Set();
  for (const r of rows) for (const [k, v] of Object.entries(r)) if (v === null || typeof v !== "object") keys.add(k);
  let chosen = preferred.filter((k) => keys.has(k));
  if (!chosen.length) chosen = [...keys].slice(0, max);
  return chosen.map((k) => ({
    key: k, label: label(k),
    render: (r) => (/(_at|_after|_before)$/.test(k) || /At$/.test(k) ? fmtDate(r[k])
      : /status|state$/.test(k) ? badge(r[k]) : r[k]),
  }));
}

function label(key) { const t = key.replace(/_/g, " "); return t.charAt(0).toUpperCase() + t.slice(1); }

function scalarPairs(obj) {
  return Object.entries(obj).filter(([, v]) => v === null || typeof v !== "object")
    .map(([k, v]) => [label(k), /(_at|_after|_before)$/.test(k) ? fmtDate(v) : v === null ? "—" : String(v)]);
}

function notice(text, kind = "") { return h("p", { class: `notice ${kind}` }, text); }

function unavailable(what, err) {
  return notice(`${what} is not available on this server (${err.route} answers ${err.status}). `
    + "This view lights up once the service provides that endpoint.", "unavailable");
}

function failure(err) {
  if (err instanceof NotAvailable) return unavailable("This data", err);
  const code = err.problem && err.problem.code ? ` [${err.problem.code}]` : "";
  return notice(`Could not load: ${err.message}${code}`, "bad");
}

function announce(text) {
  const el = document.getElementById("status");
  el.textContent = text;
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => { el.textContent = ""; }, 6000);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Confirmation dialog                                                                                          */

/* Shows a modal <dialog> with `content`; `onConfirm` runs on OK and may throw to keep the dialog open with the
 * error shown. Resolves true when the action completed, false when cancelled. Cancel has the initial focus. */
function confirmDialog({ title, content, okLabel, onConfirm }) {
  const dlg = document.getElementById("confirm");
  const ok = document.getElementById("confirm-ok");
  const err = document.getElementById("confirm-error");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-body").replaceChildren(...[content].flat());
  ok.textContent = okLabel;
  ok.disabled = false;
  err.textContent = "";
  const form = document.getElementById("confirm-form");
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const onSubmit = async (ev) => {
      const submitter = ev.submitter;
      if (!submitter || submitter.value !== "ok") return; /* cancel: let method=dialog close it */
      ev.preventDefault();
      if (!form.reportValidity()) return;
      ok.disabled = true;
      err.textContent = "";
      try {
        await onConfirm(new FormData(form));
        finish(true);
        dlg.close("ok");
      } catch (e) {
        err.textContent = e instanceof NotAvailable
          ? `Not available on this server: ${e.route} answers ${e.status}.` : `Refused: ${e.message}`;
        ok.disabled = false;
      }
    };
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      form.removeEventListener("submit", onSubmit);
      dlg.removeEventListener("close", onClose);
      if (opener && opener.focus) opener.focus();
      resolve(value);
    };
    const onClose = () => finish(false);
    form.addEventListener("submit", onSubmit);
    dlg.addEventListener("close", onClose);
    dlg.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

function selectField(id, label, options, selected) {
  return h("div", {},
    h("label", { for: id }, label),
    h("select", { id, name: id, required: true },
      options.map(([v, l]) => h("option", { value: v, selected: v === selected }, l))));
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Views                                                                                                        */

let cache = { cas: null };
let refreshTimer = null;

async function loadCas() {
  if (!cache.cas) cache.cas = await api(API.cas);
  return cache.cas;
}

function heading(text) { return h("h1", { tabindex: "-1" }, text); }

async function viewCas(view, _params, selected) {
  const cas = await loadCas();
  const names = new Set(cas.map((c) => c.name));
  const children = new Map();
  for (const ca of cas) {
    const parent = ca.parent && names.has(ca.parent) ? ca.parent : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(ca);
  }
  const order = (a, b) => (a.generation + a.name).localeCompare(b.generation + b.name);
  const detail = h("section", { class: "panel", "aria-labelledby": "ca-detail-title" });
  const buttons = new Map();

  const showDetail = (ca) => {
    for (const [n, b] of buttons) b.setAttribute("aria-current", n === ca.name ? "true" : "false");
    detail.replaceChildren(
      h("h2", { id: "ca-detail-title" }, ca.name),
      fields([
        ["Kind", ca.kind], ["Generation", ca.generation], ["Parent", ca.parent || "— (root)"],
        ["Status", badge(ca.status)], ["Subject", ca.subject], ["Serial", h("span", { class: "mono" }, ca.serial || "—")],
        ["Key", `${ca.key_algorithm} in ${ca.key_uri_scheme} key store`],
        ["Not before", fmtDate(ca.not_before)], ["Not after", h("span", {}, fmtDate(ca.not_after), " ", h("span", { class: "muted" }, relDays(ca.not_after)))],
        ["Certificate", h("span", {}, h("a", { href: `/ca/${enc(ca.name)}.pem`, download: `${ca.name}.pem` }, "PEM"), " · ",
          h("a", { href: `/ca/${enc(ca.name)}.der`, download: `${ca.name}.der` }, "DER"))],
      ]),
      h("div", { class: "actions" },
        h("a", { class: "button secondary", href: `#/certificates?issuer=${enc(ca.name)}` }, "Certificates issued by this CA"),
        h("a", { class: "button secondary", href: `#/expiry?issuer=${enc(ca.name)}` }, "Expiry of issued certificates")),
    );
  };

  const branch = (parent, depth) => {
    const list = (children.get(parent) || []).sort(order);
    if (!list.length) return null;
    return h("ul", depth === 0 ? { class: "tree", "aria-label": "CA hierarchies" } : {},
      list.map((ca) => {
        const b = h("button", { type: "button", class: "node", "aria-current": "false", "aria-controls": "ca-detail",
          onclick: () => { location.hash = `#/cas/${enc(ca.name)}`; } },
        h("span", { class: "name" }, ca.name), " ", badge(ca.status), " ",
        h("span", { class: "muted" }, [ca.kind === ca.name ? null : ca.kind, ca.generation,
          `until ${(ca.not_after || "").slice(0, 10) || "?"}`].filter(Boolean).join(" · ")));
        buttons.set(ca.name, b);
        return h("li", { dataset: { ca: ca.name } }, b, branch(ca.name, depth + 1));
      }));
  };
  detail.id = "ca-detail";
  const tree = branch(null, 0) || h("p", { class: "muted" }, "No CAs yet: create them with `pnc ca init` or start in development mode.");
  view.replaceChildren(heading("CA hierarchies"),
    h("p", { class: "muted" }, `${cas.length} certificate authorities. Select one for details.`),
    h("div", { class: "split" }, h("div", { class: "panel" }, tree), detail));
  const select = (name) => {
    const current = cas.find((c) => c.name === name) || null;
    if (current) showDetail(current);
    else detail.replaceChildren(h("h2", { id: "ca-detail-title" }, "Details"), h("p", { class: "muted" }, "Select a CA in the tree."));
  };
  select(selected);
  /* Selecting another CA only swaps the detail panel: the tree (and the keyboard focus in it) stays. */
  return { route: "cas", update: (_params, name) => { select(name); announce(`Details of ${name || "no CA"}`); } };
}

function certColumns() {
  return [
    { label: "ID", render: (c) => h("a", { href: `#/certificates/${c.id}` }, String(c.id)), num: true },
    { label: "Subject", key: "subject" },
    { label: "Kind", key: "kind" },
    { label: "Owner", key: "owner" },
    { label: "Issuer", key: "issuer" },
    { label: "Status", render: (c) => badge(c.status) },
    { label: "Not after", render: (c) => fmtDate(c.not_after) },
    { label: "Serial", key: "serial", mono: true },
  ];
}

function pager(params, count, base) {
  const offset = Number(params.get("offset") || 0);
  const go = (o) => { const p = new URLSearchParams(params); if (o) p.set("offset", String(o)); else p.delete("offset"); return `${base}?${p}`; };
  const hasNext = count > PAGE;
  const shown = Math.min(count, PAGE);
  return h("nav", { class: "pager", "aria-label": "Pages" },
    offset > 0 ? h("a", { class: "button secondary", href: go(Math.max(0, offset - PAGE)), rel: "prev" }, "← Previous") : null,
    h("span", { class: "muted" }, shown ? `Showing ${offset + 1}–${offset + shown}` : "No results"),
    hasNext ? h("a", { class: "button secondary", href: go(offset + PAGE), rel: "next" }, "Next →") : null);
}

async function viewCertificates(view, params) {
  const cas = await loadCas().catch(() => []);
  const form = h("form", { class: "filters", role: "search", "aria-label": "Certificate search" },
    h("div", {}, h("label", { for: "f-kind" }, "Kind"),
      h("select", { id: "f-kind", name: "kind" }, h("option", { value: "" }, "any"),
        KINDS.map((k) => h("option", { value: k, selected: params.get("kind") === k }, k)))),
    h("div", {}, h("label", { for: "f-status" }, "Status"),
      h("select", { id: "f-status", name: "status" }, ["", "valid", "revoked"].map((v) =>
        h("option", { value: v, selected: (params.get("status") || "") === v }, v || "any")))),
    h("div", {}, h("label", { for: "f-owner" }, "Owner"),
      h("input", { id: "f-owner", name: "owner", value: params.get("owner") || "", placeholder: "station id, EMAID…", size: 18 })),
    h("div", {}, h("label", { for: "f-issuer" }, "Issuer"),
      h("select", { id: "f-issuer", name: "issuer" }, h("option", { value: "" }, "any"),
        cas.map((c) => h("option", { value: c.name, selected: params.get("issuer") === c.name }, c.name)))),
    h("div", {}, h("button", { type: "submit" }, "Search")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) p.set(k, String(v).trim());
    location.hash = `#/certificates?${p}`;
  });
  const results = h("section", { "aria-labelledby": "results-title" }, h("h2", { id: "results-title" }, "Results"));
  view.replaceChildren(heading("Certificates"), form, results);
  const q = new URLSearchParams();
  for (const k of ["kind", "status", "owner", "issuer"]) if (params.get(k)) q.set(k, params.get(k));
  q.set("limit", String(PAGE + 1));
  q.set("offset", params.get("offset") || "0");
  try {
    const rows = await api(`${API.certificates}?${q}`);
    results.append(table(certColumns(), rows.slice(0, PAGE), { empty: "No certificate matches these filters." }),
      pager(params, rows.length, "#/certificates"));
    announce(`${Math.min(rows.length, PAGE)} certificates shown`);
  } catch (e) {
    results.append(e.status === 404 ? notice(e.message, "bad") : failure(e));
  }
}

async function download(id, format, chain, filename) {
  const resp = await api(API.download(id, format, chain), { raw: true });
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  announce(`Downloaded ${filename}`);
}

async function viewCertificate(view, _params, id) {
  const c = await api(API.certificate(id));
  const base = `certificate-${c.id}-${c.serial}`;
  const actions = h("div", { class: "actions" },
    h("button", { type: "button", id: "dl-pem", onclick: () => download(c.id, "pem", false, `${base}.pem`).catch(showError) }, "Download PEM"),
    h("button", { type: "button", class: "secondary", onclick: () => download(c.id, "pem", true, `${base}-chain.pem`).catch(showError) }, "PEM with chain"),
    h("button", { type: "button", class: "secondary", onclick: () => download(c.id, "der", false, `${base}.der`).catch(showError) }, "DER"),
    c.status === "valid" ? h("button", { type: "button", class: "danger", id: "revoke", onclick: () => revokeFlow(c) }, "Revoke…") : null,
    c.status === "revoked" && c.revocation_reason === "certificateHold"
      ? h("button", { type: "button", id: "release", onclick: () => releaseFlow(c) }, "Release hold…") : null);
  view.replaceChildren(heading(`Certificate ${c.id}`),
    h("p", { class: "muted" }, c.subject),
    h("div", { class: "panel" }, fields([
      ["Status", badge(c.status)], ["Kind", c.kind], ["Generation", c.generation],
      ["Subject", c.subject], ["Issuer", h("a", { href: `#/cas/${enc(c.issuer)}` }, c.issuer)],
      ["Serial", h("span", { class: "mono" }, c.serial)], ["Owner", c.owner],
      ["Key", c.key_algorithm], ["Not before", fmtDate(c.not_before)],
      ["Not after", h("span", {}, fmtDate(c.not_after), " ", h("span", { class: "muted" }, relDays(c.not_after)))],
      ["Issued at", fmtDate(c.issued_at)],
      ["SHA-256 fingerprint", h("span", { class: "mono" }, c.fingerprint_sha256 || "—")],
      ["Revoked at", fmtDate(c.revoked_at)], ["Revocation reason", c.revocation_reason],
    ])),
    actions);
}

function showError(e) { announce(e instanceof NotAvailable ? `Not available: ${e.route}` : `Error: ${e.message}`); }

async function revokeFlow(c) {
  const done = await confirmDialog({
    title: `Revoke certificate ${c.id}?`,
    okLabel: "Revoke certificate",
    content: [
      h("p", {}, "Revocation is published at once through OCSP and the next CRL. Only a certificate hold can be released later."),
      fields([["Subject", c.subject], ["Serial", h("span", { class: "mono" }, c.serial)], ["Issuer", c.issuer]]),
      selectField("reason", "Reason (RFC 5280)", REASONS, "unspecified"),
    ],
    onConfirm: (data) => api(API.revoke(c.id), { method: "POST", body: { reason: data.get("reason") } }),
  });
  if (done) {
    announce(`Certificate ${c.id} revoked`);
    render();
  }
}

async function releaseFlow(c) {
  const done = await confirmDialog({
    title: `Release the hold on certificate ${c.id}?`,
    okLabel: "Release hold",
    content: [h("p", {}, "The certificate becomes valid again (RFC 5280 removeFromCRL); OCSP answers good at once."),
      fields([["Subject", c.subject], ["Serial", h("span", { class: "mono" }, c.serial)]])],
    onConfirm: () => api(API.revoke(c.id), { method: "POST", body: { reason: "removeFromCRL" } }),
  });
  if (done) {
    announce(`Hold on certificate ${c.id} released`);
    render();
  }
}

/* Expiry timeline: stacked bars per bucket and kind, hand-written SVG, with the same data as a table. */
async function viewExpiry(view, params) {
  const bucket = params.get("bucket") === "month" ? "month" : "week";
  const periods = params.get("periods") || (bucket === "week" ? "26" : "24");
  const issuer = params.get("issuer") || "";
  const form = h("form", { class: "filters", "aria-label": "Timeline options" },
    h("div", {}, h("label", { for: "x-bucket" }, "Bucket"),
      h("select", { id: "x-bucket", name: "bucket" }, ["week", "month"].map((b) => h("option", { value: b, selected: b === bucket }, `per ${b}`)))),
    h("div", {}, h("label", { for: "x-periods" }, "Periods"),
      h("input", { id: "x-periods", name: "periods", type: "number", min: 1, max: 260, value: periods, size: 4 })),
    issuer ? h("input", { type: "hidden", name: "issuer", value: issuer }) : null,
    h("div", {}, h("button", { type: "submit" }, "Show")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) p.set(k, String(v));
    location.hash = `#/expiry?${p}`;
  });
  view.replaceChildren(heading("Expiry timeline"),
    h("p", { class: "muted" }, "Valid certificates by the week or month their notAfter falls in, stacked per kind"
      + (issuer ? `, issued by ${issuer}.` : ".")), form);
  const q = new URLSearchParams({ bucket, periods });
  if (issuer) q.set("issuer", issuer);
  const data = await api(`${API.histogram}?${q}`);
  const expired = Object.values(data.expired).reduce((a, b) => a + b, 0);
  if (expired) {
    view.append(notice(`${expired} certificate(s) are past notAfter but still marked valid: `
      + Object.entries(data.expired).map(([k, n]) => `${n} ${k}`).join(", "), "bad"));
  }
  const colors = new Map(data.kinds.map((k, i) => [k, PALETTE[i % PALETTE.length]]));
  view.append(chart(data, colors),
    h("ul", { class: "legend", "aria-label": "Kinds" }, data.kinds.map((k) =>
      h("li", {}, h("span", { class: "swatch", style: null, dataset: { color: colors.get(k) } }), k))));
  for (const sw of view.querySelectorAll(".swatch")) sw.style.background = sw.dataset.color;
  const label = (b) => (bucket === "week" ? `week of ${b.start.slice(0, 10)}` : b.start.slice(0, 7));
  const rows = data.buckets.filter((b) => b.total > 0);
  view.append(h("details", {}, h("summary", {}, "Show the data as a table"),
    table([{ label: bucket, render: label }, ...data.kinds.map((k) => ({ label: k, num: true, render: (b) => b.counts[k] || 0 })),
      { label: "total", num: true, key: "total" }], rows, { empty: "No certificate expires in this window." })));
  const total = data.buckets.reduce((a, b) => a + b.total, 0);
  announce(`${total} certificates expire in the next ${data.buckets.length} ${bucket}s`);
}

/* Integer-friendly axis: a 1/2/5 x 10^n step (at least 1: counts are whole) giving about four gridlines. */
function axis(maxValue) {
  const raw = Math.max(1, maxValue) / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * p).find((v) => v >= raw));
  return { step, max: Math.max(step, Math.ceil(maxValue / step) * step) };
}

function chart(data, colors) {
  const W = 960, H = 320, L = 48, R = 12, T = 16, B = 48;
  const n = data.buckets.length;
  const { step, max } = axis(Math.max(...data.buckets.map((b) => b.total), 0));
  const bw = (W - L - R) / n;
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const total = data.buckets.reduce((a, b) => a + b.total, 0);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "chart-title chart-desc" },
    s("title", { id: "chart-title" }, `Certificates expiring per ${data.bucket}`),
    s("desc", { id: "chart-desc" }, `${total} valid certificates expire between ${data.start.slice(0, 10)} and ${data.end.slice(0, 10)}; `
      + "the table below the chart has the same numbers."));
  for (let v = 0; v <= max; v += step) {
    svg.append(s("line", { class: "axis", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)));
  }
  const every = Math.ceil(n / 12);
  data.buckets.forEach((b, i) => {
    const x = L + i * bw;
    let acc = 0;
    for (const k of data.kinds) {
      const c = b.counts[k] || 0;
      if (!c) continue;
      const top = y(acc + c), bottom = y(acc);
      svg.append(s("rect", { class: "bar", x: (x + bw * 0.12).toFixed(1), width: (bw * 0.76).toFixed(1),
        y: top.toFixed(1), height: Math.max(1, bottom - top).toFixed(1), fill: colors.get(k), "data-kind": k, "data-count": c },
      s("title", {}, `${b.start.slice(0, 10)}: ${c} ${k}`)));
      acc += c;
    }
    if (i % every === 0) {
      const text = data.bucket === "week" ? b.start.slice(5, 10) : b.start.slice(0, 7);
      svg.append(s("text", { x: (x + bw / 2).toFixed(1), y: H - B + 16, "text-anchor": "middle" }, text));
    }
  });
  svg.append(s("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }),
    s("text", { x: L, y: H - 8 }, `${data.bucket} starting (UTC)`));
  return svg;
}

async function viewRevocations(view, params) {
  const offset = params.get("offset") || "0";
  view.replaceChildren(heading("Revocations"),
    h("p", { class: "muted" }, "Revoked certificates, oldest first. Revoke from a certificate's detail page."));
  const rows = await api(`${API.certificates}?status=revoked&limit=${PAGE + 1}&offset=${enc(offset)}`);
  view.append(table([
    { label: "ID", render: (c) => h("a", { href: `#/certificates/${c.id}` }, String(c.id)), num: true },
    { label: "Subject", key: "subject" }, { label: "Kind", key: "kind" }, { label: "Issuer", key: "issuer" },
    { label: "Serial", key: "serial", mono: true }, { label: "Revoked at", render: (c) => fmtDate(c.revoked_at) },
    { label: "Reason", key: "revocation_reason" },
  ], rows.slice(0, PAGE), { empty: "No certificate has been revoked." }), pager(params, rows.length, "#/revocations"));
}

function listOf(body, ...keys) {
  if (Array.isArray(body)) return body;
  for (const k of keys) if (body && Array.isArray(body[k])) return body[k];
  return [];
}

async function viewStations(view, params) {
  view.replaceChildren(heading("Stations"));
  let body;
  try {
    const q = new URLSearchParams({ limit: String(PAGE + 1), offset: params.get("offset") || "0" });
    body = await api(`${API.stations}?${q}`);
  } catch (e) {
    if (e instanceof NotAvailable) { view.append(unavailable("The station registry", e)); return; }
    throw e;
  }
  const rows = listOf(body, "stations", "items");
  const cols = columnsFor(rows, ["station_id", "serial_number", "organization", "security_profile", "ocpp_version",
    "connected", "enabled", "last_seen_at"]);
  const idKey = rows.length && "station_id" in rows[0] ? "station_id" : "id";
  cols.unshift({ label: "open", render: (r) => h("a", { href: `#/stations/${enc(r[idKey])}`, "aria-label": `Station ${r[idKey]}` }, "details") });
  view.append(table(cols, rows.slice(0, PAGE), { empty: "No station is registered." }), pager(params, rows.length, "#/stations"));
}

async function section(title, loader) {
  const sec = h("section", {}, h("h2", {}, title));
  try {
    sec.append(await loader());
  } catch (e) {
    sec.append(e instanceof NotAvailable ? unavailable(title, e) : failure(e));
  }
  return sec;
}

async function viewStation(view, _params, id) {
  let st;
  try {
    st = await api(API.station(id));
  } catch (e) {
    if (e instanceof NotAvailable) { view.replaceChildren(heading(`Station ${id}`), unavailable("The station registry", e)); return; }
    throw e;
  }
  const trigger = h("button", { type: "button", id: "trigger", onclick: () => triggerFlow(st) }, "Trigger renewal…");
  view.replaceChildren(heading(`Station ${id}`),
    h("div", { class: "panel" }, fields([
      ["Connected", st.connected === undefined ? "—" : st.connected ? badge("connected") : "no"],
      ...scalarPairs(Object.fromEntries(Object.entries(st).filter(([k]) => k !== "connected"))),
      ["SECC/EVSE IDs", Array.isArray(st.secc_ids) && st.secc_ids.length ? st.secc_ids.join(", ") : "—"],
    ])),
    h("div", { class: "actions" }, trigger));
  view.append(await section("Installed certificates (as the station reported them)", async () => {
    const rows = listOf(await api(API.stationInventory(id)), "items");
    return table([
      { label: "Type", key: "certificate_type" },
      { label: "Serial", mono: true, render: (r) => (r.certificate_hash_data || {}).serialNumber || r.serial_number },
      { label: "Hash", render: (r) => (r.certificate_hash_data || {}).hashAlgorithm || r.hash_algorithm },
      { label: "Children", num: true, render: (r) => (r.child_certificate_hash_data || []).length },
      { label: "Reported", render: (r) => fmtDate(r.reported_at) },
    ], rows, { empty: "The station has not reported its installed certificates yet (GetInstalledCertificateIds)." });
  }));
  view.append(await section("Certificates issued to this station", async () => {
    const rows = await api(`${API.certificates}?owner=${enc(id)}&limit=${PAGE}`);
    return table(certColumns(), rows, { empty: "No certificate was issued with this station as owner." });
  }));
  view.append(await section("Outbox", async () => {
    const rows = listOf(await api(API.stationOutbox(id)), "items");
    return table([
      { label: "ID", key: "id", num: true }, { label: "Action", key: "action" },
      { label: "Request", render: (r) => (r.payload && r.payload.requestedMessage) || "" },
      { label: "Status", render: (r) => badge(r.status) }, { label: "Attempts", key: "attempts", num: true },
      { label: "Next attempt", render: (r) => fmtDate(r.next_attempt_at) },
      { label: "Answer", render: (r) => (r.response && r.response.status) || r.error || "" },
      { label: "Created", render: (r) => fmtDate(r.created_at) },
    ], rows, { empty: "No queued or recent calls for this station." });
  }));
}

async function triggerFlow(st) {
  const options = TRIGGERS[st.ocpp_version] || TRIGGERS["2.0.1"];
  const done = await confirmDialog({
    title: `Trigger certificate renewal on ${st.station_id}?`,
    okLabel: "Queue renewal trigger",
    content: [
      h("p", {}, "Queues the trigger in the station's durable outbox; it is delivered when the station is connected "
        + "and the station answers with a new CSR (SignCertificate)."),
      fields([["Station", st.station_id], ["OCPP", st.ocpp_version || "not connected yet (2.0.1 assumed)"],
        ["Connected", st.connected ? "yes" : "no: delivered on reconnect"]]),
      selectField("trigger-kind", "Certificate to renew", options.map(([label], i) => [String(i), label]), "0"),
    ],
    onConfirm: (data) => api(API.stationCommand(st.station_id), { method: "POST", body: options[Number(data.get("trigger-kind"))][1] }),
  });
  if (done) {
    announce(`Renewal trigger queued for ${st.station_id}`);
    render();
  }
}

function progress(counts) {
  const installed = counts.installed || 0, pending = counts.pending || 0, failed = counts.failed || 0;
  const total = installed + pending + failed;
  const pct = (v) => (total ? (100 * v) / total : 0);
  const bar = h("div", { class: "progress", role: "img",
    "aria-label": `${installed} of ${total} stations installed, ${pending} pending, ${failed} failed` },
  h("span", { class: "installed", dataset: { w: pct(installed) } }), h("span", { class: "failed", dataset: { w: pct(failed) } }));
  return h("div", {}, bar, h("small", { class: "muted" }, `${installed}/${total} installed · ${pending} pending · ${failed} failed`));
}

function sizeBars(root) { for (const el of root.querySelectorAll(".progress span")) el.style.width = `${el.dataset.w}%`; }

async function viewJobs(view) {
  view.replaceChildren(heading("Jobs"), h("p", { class: "muted" }, "Root and sub-CA rotations and other long-running jobs; refreshed every 5 s."));
  let body;
  try {
    body = await api(API.jobs);
  } catch (e) {
    if (e instanceof NotAvailable) { view.append(unavailable("The job service", e)); return; }
    throw e;
  }
  const rows = listOf(body, "jobs", "items");
  view.append(table([
    { label: "ID", render: (j) => h("a", { href: `#/jobs/${enc(j.id)}` }, String(j.id)), num: true },
    { label: "Kind", key: "kind" }, { label: "Target", key: "target" },
    { label: "Status", render: (j) => badge(j.status) }, { label: "Phase", key: "phase" },
    { label: "Progress", render: (j) => progress(j.counts || {}) },
    { label: "Message", key: "message" }, { label: "Updated", render: (j) => fmtDate(j.updated_at) },
  ], rows, { empty: "No jobs." }));
  sizeBars(view);
  scheduleRefresh(rows.some((j) => !["completed", "failed", "cancelled"].includes(j.status)));
}

async function viewJob(view, _params, id) {
  let job;
  try {
    job = await api(API.job(id));
  } catch (e) {
    if (e instanceof NotAvailable) { view.replaceChildren(heading(`Job ${id}`), unavailable("The job service", e)); return; }
    throw e;
  }
  const stations = listOf(job.stations || job.items || [], "items");
  view.replaceChildren(heading(`Job ${job.id}: ${job.kind} ${job.target}`),
    h("div", { class: "panel" }, fields([
      ["Status", badge(job.status)], ["Phase", job.phase], ["Message", job.message], ["Actor", job.actor],
      ["Created", fmtDate(job.created_at)], ["Updated", fmtDate(job.updated_at)], ["Finished", fmtDate(job.finished_at)],
      ["Progress", progress(job.counts || {})],
    ])),
    h("h2", {}, "Stations"),
    table(columnsFor(stations, ["station", "station_id", "state", "step", "attempts", "reason"]), stations,
      { empty: "This job has no per-station items." }));
  sizeBars(view);
  scheduleRefresh(!["completed", "failed", "cancelled"].includes(job.status));
}

function scheduleRefresh(active) {
  clearTimeout(refreshTimer);
  if (active && !document.hidden) refreshTimer = setTimeout(() => render({ quiet: true }), 5000);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Routing, sign-in                                                                                             */

const ROUTES = [
  [/^\/cas(?:\/([^/]+))?$/, viewCas, "cas"],
  [/^\/certificates$/, viewCertificates, "certificates"],
  [/^\/certificates\/(\d+)$/, viewCertificate, "certificates"],
  [/^\/expiry$/, viewExpiry, "expiry"],
  [/^\/revocations$/, viewRevocations, "revocations"],
  [/^\/stations$/, viewStations, "stations"],
  [/^\/stations\/([^/]+)$/, viewStation, "stations"],
  [/^\/jobs$/, viewJobs, "jobs"],
  [/^\/jobs\/([^/]+)$/, viewJob, "jobs"],
];

function parseHash() {
  const raw = location.hash.startsWith("#/") ? location.hash.slice(1) : "/cas";
  const [path, query] = raw.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

let renderSeq = 0;
let current = null; /* the view on screen, when it can update itself in place */

async function render({ quiet = false } = {}) {
  clearTimeout(refreshTimer);
  if (!token()) { showLogin(); return; }
  showApp();
  const { path, params } = parseHash();
  const view = document.getElementById("view");
  const route = ROUTES.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll("#nav a")) {
    a.toggleAttribute("aria-current", false);
    if (route && a.dataset.section === route[2]) a.setAttribute("aria-current", "page");
  }
  if (!route) { view.replaceChildren(heading("Not found"), notice(`No console page ${path}.`, "bad")); return; }
  const arg = path.match(route[0])[1];
  const decoded = arg === undefined ? undefined : decodeURIComponent(arg);
  if (!quiet && current && current.route === route[2] && current.update && view.isConnected) {
    current.update(params, decoded);
    return;
  }
  current = null;
  const seq = ++renderSeq;
  const target = quiet ? h("div") : view;
  if (!quiet) { view.setAttribute("aria-busy", "true"); view.replaceChildren(heading("Loading…")); }
  let result;
  try {
    result = await route[1](target, params, decoded);
  } catch (e) {
    if (e.status === 401) return;
    target.append(failure(e));
  }
  if (seq !== renderSeq) return; /* a newer navigation won */
  if (quiet) view.replaceChildren(...target.childNodes);
  current = result && result.route ? result : null;
  view.removeAttribute("aria-busy");
  const h1 = view.querySelector("h1");
  if (h1 && !quiet && render.focus) h1.focus();
  render.focus = true;
}

function showLogin(message) {
  document.getElementById("login").hidden = false;
  document.getElementById("view").replaceChildren();
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("token").focus();
}

function showApp() {
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  current = null;
  cache = { cas: null };
  clearTimeout(refreshTimer);
  showLogin(message);
}

async function signIn(ev) {
  ev.preventDefault();
  const input = document.getElementById("token");
  const value = input.value.trim();
  const err = document.getElementById("login-error");
  if (!value) { err.textContent = "Enter a token."; return; }
  const resp = await fetch(API.cas, { headers: { Authorization: `Bearer ${value}` }, cache: "no-store", credentials: "omit" });
  if (resp.status === 401) { err.textContent = "This token was refused (invalid, expired or revoked)."; return; }
  if (resp.status === 403) { err.textContent = "This token's role may not read certificates (needs admin, operator or auditor)."; return; }
  if (!resp.ok) { err.textContent = `The server answered ${resp.status}.`; return; }
  sessionStorage.setItem(TOKEN_KEY, value);
  cache = { cas: await resp.json() };
  input.value = "";
  err.textContent = "";
  announce("Signed in");
  render.focus = true;
  if (!location.hash) location.hash = "#/cas"; else render();
}

function init() {
  document.getElementById("login-form").addEventListener("submit", (ev) => { signIn(ev).catch((e) => { document.getElementById("login-error").textContent = `Sign-in failed: ${e.message}`; }); });
  document.getElementById("logout").addEventListener("click", () => signOut("Signed out."));
  /* The skip link must not touch location.hash: the hash is the console's router. */
  document.querySelector(".skip").addEventListener("click", (ev) => { ev.preventDefault(); document.getElementById("main").focus(); });
  document.getElementById("who-label").textContent = "token in this tab";
  window.addEventListener("hashchange", () => render());
  document.addEventListener("visibilitychange", () => { if (!document.hidden && /^\/jobs/.test(parseHash().path)) render({ quiet: true }); });
  render.focus = false;
  render();
}

init();

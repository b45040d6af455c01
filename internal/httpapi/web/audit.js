// The auditor page: loads a certificate (by id, link or upload), verifies
// it with verify.js against /v1/keys, and describes it in plain language.
import { utcText, verifyCertificate, verifyCommitment, verifyRechecks } from "./verify.js";

const $ = (id) => document.getElementById(id);
let current = null;

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(e, rest);
  Object.assign(e.dataset, dataset || {});
  for (const c of children) e.append(c);
  return e;
}

const outcomeText = {
  erased: (s) => s.records_erased === "unknown"
    ? "erased; the system confirmed it without saying how many records"
    : `erased ${s.records_erased} record${s.records_erased === 1 ? "" : "s"}`,
  not_found: () => "searched; held nothing about the person",
  exempted: (s) => `kept, exempted under ${s.exemption_basis || "a recorded legal basis"}`,
  not_applicable: (s) => `not searched: not applicable (${s.not_applicable_reason})`,
};

// sources writes kinds of identifier with where they came from.
function sources(list, v1) {
  if (!list || !list.length) return v1 ? "not recorded (a version 1 certificate)" : "—";
  return list.map((s) => `${s.kind} (from ${s.from})`).join(", ");
}

function when(iso) {
  return iso ? utcText(new Date(iso)) : "—";
}

function describe(p) {
  const dl = el("dl");
  const row = (k, v) => dl.append(el("dt", { textContent: k }), el("dd", { textContent: v }));
  row("Issued by", p.issuer);
  row("Request", p.request_id);
  row("Law", p.jurisdiction.toUpperCase());
  const v1 = p.schema.endsWith("/v1");
  row("Received", when(p.received_at));
  if (p.extension) {
    row("Due", `${when(p.due_at)}, extended on ${when(p.extension.extended_at)} from ${when(p.original_due_at)} (${p.extension.basis})`);
  } else {
    row("Due", when(p.due_at));
  }
  if (!v1) row("Identifiers used", sources(p.identifiers) + " — kinds only, never the values");
  row("Completed", when(p.completed_at) + (p.deadline_met ? " — deadline met" : " — DEADLINE MISSED"));
  row("Backups", p.backup_purge_by
    ? `not altered; purged by ${p.backup_purge_by}, when the last backup taken before the erasure expires (restoring one earlier brings the data back, and it must be erased again)`
    : "not covered: the organisation stated no backup retention, so this certificate says nothing about copies of the data in backups");
  row("Certificate", p.certificate_id);

  const table = el("table");
  table.append(el("thead", {}, el("tr", {}, el("th", { textContent: "System" }), el("th", { textContent: "Outcome" }),
    el("th", { textContent: "Searched by" }), el("th", { textContent: "Checked afterwards" }), el("th", { textContent: "Evidence" }))));
  const body = el("tbody");
  for (const s of p.systems) {
    const ev = el("ul", { className: "evidence" });
    for (const e of s.evidence) ev.append(el("li", { textContent: `${e.kind}: ${e.value}` }));
    // data-label names each cell where a phone shows the rows as cards.
    body.append(el("tr", {},
      el("td", { textContent: `${s.connector} (${s.type})`, dataset: { label: "System" } }),
      el("td", { textContent: (outcomeText[s.outcome] || (() => s.outcome))(s) + `, ${when(s.completed_at)}`, dataset: { label: "Outcome" } }),
      el("td", { textContent: s.outcome === "erased" || s.outcome === "not_found" ? sources(s.searched_by, v1) : "—", dataset: { label: "Searched by" } }),
      el("td", { textContent: s.verification === "clean" ? "yes: nothing found" : s.verification === "lookup_failed" ? "the lookup failed" : "no lookup available", dataset: { label: "Checked afterwards" } }),
      el("td", { dataset: { label: "Evidence" } }, ev)));
  }
  table.append(body);
  const parts = [dl];
  if (p.resolution && p.resolution.length) {
    const list = el("ul");
    for (const l of p.resolution) {
      const found = l.outcome === "not_applicable" ? `not looked up: ${l.reason}`
        : l.found.length ? `supplied ${l.found.join(", ")}` : "found nothing more";
      list.append(el("li", { textContent: `${l.connector} (${l.type}) looked the person up by ${sources(l.looked_up_by)}: ${found}.` }));
    }
    parts.push(el("h3", { textContent: "Looked up before erasure" }), list);
  }
  const retained = p.retained.length
    ? el("p", { textContent: "Kept under a legal basis: " + p.retained.map((r) => `${r.connector} (${r.basis})`).join(", ") })
    : el("p", { textContent: "Nothing was kept under a legal exemption." });
  parts.push(el("h3", { textContent: "Systems" }), table, retained);
  if (p.not_applicable && p.not_applicable.length) {
    parts.push(el("p", { textContent: "Not applicable to this person: " + p.not_applicable.map((n) => `${n.connector} (${n.reason})`).join(", ") }));
  }
  parts.push(el("p", { className: "statement", textContent: p.statement }));
  return parts;
}

// recheckText says what one re-check found, in words.
function recheckText(c) {
  const age = /^\d/.test(c.after) ? ageText(c.after) : "a scheduled sweep";
  const n = (k) => `${k} record${k === 1 ? "" : "s"}`;
  const what = {
    clean: "clean: looked up again, held nothing",
    found: `found again: held ${n(c.records)}; Lethe started erasing them again`,
    re_erased: (c.records >= 0 ? `erased again: ${n(c.records)}` : "erased again") + (c.note ? ` (${c.note})` : ""),
    not_checked: `not checked: ${c.note || "no reason recorded"}`,
  }[c.outcome] || c.outcome;
  return `${c.connector} at ${age} (${when(c.at)}): ${what}`;
}

// ageText turns a configured age ("72h", "1m0s") into "day 3" or itself.
function ageText(after) {
  const m = /^(\d+)h/.exec(after);
  return m && Number(m[1]) >= 24 ? `day ${Math.floor(Number(m[1]) / 24)}` : after;
}

// showRechecks lists the log's re-checks of a valid certificate, each
// proven against the log's latest signed checkpoint.
async function showRechecks(r) {
  const box = el("section", { className: "rechecks" });
  box.setAttribute("aria-labelledby", "rechecks-h");
  box.append(el("h3", { id: "rechecks-h", textContent: "Re-checked later" }));
  $("details").append(box);
  // Where the page cannot reach the certificate's log, it says so briefly:
  // that is no failure of the certificate, only re-checks left unshown.
  const unreachable = (why) => box.append(el("p", { className: "hint", textContent: `Re-checks not shown: ${why}.` }));
  let note, res;
  try {
    const cpRes = await fetch("/v1/log/checkpoint");
    if (!cpRes.ok) return unreachable("the log's latest checkpoint could not be loaded");
    note = await cpRes.text();
    if (note.split("\n")[0] !== r.log.origin) return unreachable(`this server keeps another log than ${r.log.origin}, the one this certificate is in`);
    const size = Number(note.split("\n")[1]);
    res = await fetch(`/v1/certificates/${encodeURIComponent(r.payload.certificate_id)}/rechecks?size=${size}`);
  } catch {
    return unreachable("the log could not be reached");
  }
  try {
    if (res.status === 404) {
      box.append(el("p", { textContent: "This server does not hold this certificate, so it cannot show its re-checks." }));
      return;
    }
    if (!res.ok) throw new Error("the re-checks could not be loaded");
    const v = await verifyRechecks(r.payload.certificate_id, r.log.origin, r.jwks, note, await res.json());
    if (!v.rechecks.length) {
      box.append(el("p", { textContent: `Not re-checked yet: the log's latest checkpoint (${v.size} entries) holds no re-check of this certificate.` }));
      return;
    }
    const list = el("ul", { className: "checks" });
    for (const c of v.rechecks) {
      list.append(c.ok
        ? el("li", { className: c.recheck.outcome === "clean" ? "ok" : "warn", textContent: recheckText(c.recheck) + ` — in the log as entry ${c.index}.` })
        : el("li", { className: "bad", textContent: `Entry ${c.index} does not verify, so it cannot be trusted: ${c.error}.` }));
    }
    const failed = v.rechecks.filter((c) => !c.ok).length;
    box.append(failed
      ? el("p", { className: "bad", textContent: `${failed} of ${v.rechecks.length} re-checks ${failed === 1 ? "does" : "do"} not verify against the log's latest signed checkpoint, of ${v.size} entries; the others are proven to be in it.` })
      : el("p", { textContent: `Each is proven to be in the log's latest signed checkpoint, of ${v.size} entries.` }), list);
  } catch (e) {
    box.append(el("p", { className: "bad", textContent: "The re-checks could not be verified: " + e.message + "." }));
  }
}

async function show(text) {
  $("result").hidden = false;
  $("verdict").textContent = "Checking…";
  $("verdict").className = "verdict";
  $("checks").replaceChildren();
  $("details").replaceChildren();
  const jwks = await (await fetch("/v1/keys")).json();
  const r = await verifyCertificate(text, jwks);
  current = r;
  $("verdict").textContent = r.valid
    ? "Valid: signed by the organisation and published in its transparency log."
    : "Not valid: " + r.reason;
  $("verdict").className = "verdict " + (r.valid ? "ok" : "bad");
  // Before a failure, a passed check proves nothing: the document it
  // looked at is not the one the organisation signed.
  for (const c of r.checks) {
    const untrusted = c.ok && !r.valid;
    $("checks").append(el("li", {
      className: untrusted ? "untrusted" : c.ok ? "ok" : "bad",
      textContent: untrusted ? `${c.text} (checked, but not to be trusted: the certificate fails below)` : c.text,
    }));
  }
  if (r.payload) $("details").append(...describe(r.payload));
  if (r.valid && r.log) {
    r.jwks = jwks;
    await showRechecks(r);
  }
}

// certificateIDFrom takes what was typed or pasted: an id, or a link to a
// certificate (…/audit?certificate=ID, …/v1/certificates/ID).
export function certificateIDFrom(input) {
  const text = input.trim();
  try {
    const u = new URL(text);
    const q = u.searchParams.get("certificate");
    if (q) return q.trim();
    const m = /\/v1\/certificates\/([^/?#]+)/.exec(u.pathname);
    if (m) return decodeURIComponent(m[1]);
  } catch {
    // not a link: an id
  }
  return text;
}

async function loadByID(input) {
  const id = certificateIDFrom(input);
  $("cert-id").value = id;
  const res = await fetch("/v1/certificates/" + encodeURIComponent(id));
  if (!res.ok) {
    $("result").hidden = false;
    $("verdict").className = "verdict bad";
    $("verdict").textContent = res.status === 404 ? "No certificate with that id." : "Could not load the certificate.";
    $("checks").replaceChildren();
    $("details").replaceChildren();
    return;
  }
  await show(await res.text());
}

$("by-id").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = certificateIDFrom($("cert-id").value);
  history.replaceState(null, "", "?certificate=" + encodeURIComponent(id));
  loadByID(id);
});

$("cert-file").addEventListener("change", async () => {
  const f = $("cert-file").files[0];
  if (f) await show(await f.text());
});

$("commitment").addEventListener("submit", async (e) => {
  e.preventDefault();
  const ok = current && current.valid && (await verifyCommitment(current.payload, $("c-email").value, $("c-nonce").value.trim()));
  $("c-result").textContent = ok
    ? "Yes: this certificate is about this email address."
    : "No match: this email and code do not open this certificate's commitment.";
});

function authHeaders() {
  return { Authorization: "Bearer " + $("token").value.trim(), "Content-Type": "application/json" };
}

$("search").addEventListener("submit", async (e) => {
  e.preventDefault();
  const out = $("search-result");
  out.textContent = "Searching…";
  const res = await fetch("/v1/audit/search", { method: "POST", headers: authHeaders(), body: JSON.stringify({ email: $("s-email").value }) });
  const body = await res.json();
  if (!res.ok) { out.textContent = body.error ? body.error.message : "Search failed."; return; }
  if (!body.results.length) { out.textContent = "No requests refer to this email."; return; }
  const list = el("ul");
  for (const r of body.results) {
    const item = el("li", { textContent: `Request ${r.request_id}: ${r.status}, received ${when(r.received_at)}, deadline ${r.deadline}. ` });
    if (r.certificate_id) {
      const a = el("a", { href: "?certificate=" + r.certificate_id, textContent: "Open its certificate" });
      item.append(a);
    }
    list.append(item);
  }
  out.replaceChildren(list);
});

$("export").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = new URLSearchParams({ from: $("e-from").value, to: $("e-to").value, format: $("e-format").value });
  const res = await fetch("/v1/audit/requests?" + q, { headers: authHeaders() });
  if (!res.ok) { $("export-result").textContent = (await res.json()).error.message; return; }
  const blob = await res.blob();
  const a = el("a", { href: URL.createObjectURL(blob), download: `lethe-requests-${q.get("from")}-to-${q.get("to")}.${q.get("format")}` });
  document.body.append(a);
  a.click();
  a.remove();
  $("export-result").textContent = "Downloaded.";
});

const fromLink = new URLSearchParams(location.search).get("certificate");
if (fromLink) {
  $("cert-id").value = fromLink;
  loadByID(fromLink);
}

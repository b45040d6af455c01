#!/usr/bin/env node
// Verify a Lethe erasure certificate with standard tools only: the `jose`
// library for the JWS (RFC 7515, EdDSA over Ed25519) and Node's built-in
// crypto for the transparency log (RFC 9162 inclusion proof, C2SP signed
// checkpoint). Nothing here comes from Lethe; docs/verify-without-lethe.md
// explains each step.
//
//   npm ci && node verify.mjs certificate.json keys.json
//
// keys.json is the organisation's JWKS (GET /v1/keys). Exit status 0: valid.
import { flattenedVerify, importJWK } from "jose";
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";

const sha256 = (...parts) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};

function fail(message) {
  console.log("INVALID: " + message);
  process.exit(1);
}

const [certPath, jwksPath] = process.argv.slice(2);
if (!certPath || !jwksPath) {
  console.error("usage: node verify.mjs CERTIFICATE.json JWKS.json");
  process.exit(2);
}
const cert = JSON.parse(readFileSync(certPath, "utf8"));
const jwks = JSON.parse(readFileSync(jwksPath, "utf8"));

// Step 1: the signature. The certificate is a flattened JSON JWS; its
// protected header names the key (kid) in the organisation's JWKS.
const header = JSON.parse(Buffer.from(cert.protected, "base64url").toString("utf8"));
const jwk = jwks.keys.find((k) => k.kid === header.kid);
if (!jwk) fail(`key ${header.kid} is not in the key set`);
let payload;
try {
  const key = await importJWK(jwk, "EdDSA");
  ({ payload } = await flattenedVerify(
    { protected: cert.protected, payload: cert.payload, signature: cert.signature },
    key,
    { algorithms: ["EdDSA"] },
  ));
} catch (e) {
  fail("the JWS signature does not verify: " + e.message);
}
const claims = JSON.parse(new TextDecoder().decode(payload));

// Step 2: the log leaf is a domain-separated digest of the compact JWS.
const compact = `${cert.protected}.${cert.payload}.${cert.signature}`;
const leaf = Buffer.from("lethe-log/v1 certificate " + sha256(compact).toString("base64url") + "\n");
const leafHash = sha256(Buffer.from([0x00]), leaf); // RFC 6962 leaf hash

// Step 3: the inclusion proof (RFC 9162 section 2.1.3.2) gives the root of
// the tree of tree_size leaves.
const log = cert.log;
if (!log) fail("no transparency log proof");
let fn = log.index, sn = log.tree_size - 1, r = leafHash;
for (const p of log.inclusion_proof.map((h) => Buffer.from(h, "base64"))) {
  if (sn === 0) fail("inclusion proof too long");
  if (fn % 2 === 1 || fn === sn) {
    r = sha256(Buffer.from([0x01]), p, r);
    while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
  } else {
    r = sha256(Buffer.from([0x01]), r, p);
  }
  fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
}
if (sn !== 0) fail("inclusion proof too short");

// Step 4: the checkpoint (C2SP tlog-checkpoint) states the tree size and
// root; its signature line is "— <origin> base64(key hash || Ed25519
// signature)", the key hash being SHA-256(origin "\n" 0x01 public key)[:4].
const [body, sigs] = log.checkpoint.split("\n\n");
const lines = body.split("\n");
if (lines[0] !== log.origin) fail("checkpoint for another log");
if (Number(lines[1]) !== log.tree_size) fail("checkpoint size differs from the proof's");
if (!Buffer.from(lines[2], "base64").equals(r)) fail("the inclusion proof does not lead to the checkpoint's root");
let signedBy = null;
for (const line of sigs.split("\n")) {
  const m = /^\u2014 (\S+) (\S+)$/.exec(line);
  if (!m || m[1] !== log.origin) continue;
  const raw = Buffer.from(m[2], "base64");
  for (const k of jwks.keys) {
    const pub = Buffer.from(k.x, "base64url");
    const keyHash = sha256(Buffer.from(log.origin + "\n"), Buffer.from([0x01]), pub).subarray(0, 4);
    if (!keyHash.equals(raw.subarray(0, 4))) continue;
    const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: k.x }, format: "jwk" });
    if (verify(null, Buffer.from(body + "\n"), key, raw.subarray(4))) signedBy = k.kid;
  }
}
if (!signedBy) fail("the checkpoint is not signed by a key in the key set");

// Step 5: processors' receipts. A system's evidence of kind
// processor_receipt is the processor's own signed completion: the signed
// bytes ("<unix time>.<body>" or the body), its signature and its public
// key (SPKI DER, kid = "sha256:" + hex SHA-256 of it). Node's crypto checks
// the signature; the body must say completed, for the system's request.
const receiptOf = (s) => {
  const all = (s.evidence || []).filter((e) => e.kind === "processor_receipt");
  if (all.length > 1) fail(`${s.connector} carries two processor receipts`);
  if (all.length === 0) return null;
  let r;
  try { r = JSON.parse(all[0].value); } catch { r = null; }
  if (!r || r.v !== 1) fail(`${s.connector}: the processor receipt is not a version 1 receipt`);
  const der = Buffer.from(r.key, "base64"), signed = Buffer.from(r.signed, "base64"), sig = Buffer.from(r.sig, "base64");
  if ("sha256:" + sha256(der).toString("hex") !== r.kid) fail(`${s.connector}: the receipt's key is not the one its key id names`);
  let ok = false;
  try {
    const key = createPublicKey({ key: der, format: "der", type: "spki" });
    const rsaOK = key.asymmetricKeyType === "rsa" && r.alg === "RS256" && key.asymmetricKeyDetails.modulusLength >= 2048;
    const edOK = key.asymmetricKeyType === "ed25519" && r.alg === "Ed25519";
    ok = (rsaOK || edOK) && verify(edOK ? null : "sha256", signed, key, sig);
  } catch {
    ok = false;
  }
  if (!ok) fail(`${s.connector}: the processor's signature does not verify over its receipt`);
  let text = signed.toString("utf8"), at = null;
  if (!text.startsWith("{")) {
    const i = text.indexOf(".");
    if (i < 1 || !/^[0-9]+$/.test(text.slice(0, i))) fail(`${s.connector}: the receipt's signed bytes are not a timestamp and a body`);
    at = new Date(Number(text.slice(0, i)) * 1000).toISOString().replace(".000Z", "Z");
    text = text.slice(i + 1);
  }
  let body = {};
  try { body = JSON.parse(text); } catch { /* checked below */ }
  if (body.request_status !== "completed") fail(`${s.connector}: the processor's receipt says "${body.request_status}", not completed`);
  if (s.outcome !== "erased" && s.outcome !== "not_found") fail(`${s.connector}: a processor receipt on a system that was ${s.outcome}`);
  const rid = ((s.evidence || []).find((e) => e.kind === "subject_request_id") || {}).value;
  if (!rid || String(body.subject_request_id).toLowerCase() !== rid.toLowerCase()) fail(`${s.connector}: the processor's receipt is for another request`);
  return `the processor itself attested completion (key ${r.kid}${at ? ", signed " + at : ""})`;
};
const attested = Object.fromEntries(claims.systems.map((s) => [s.connector, receiptOf(s)]));

console.log(`VALID: certificate ${claims.certificate_id} for request ${claims.request_id}`);
console.log(`  issued by ${claims.issuer}, signed with key ${header.kid}`);
// Step 6: the payload version. Version 2 adds what each system was
// searched by, the look-ups before erasure and the original deadline.
const schemas = ["https://lethe.dev/schemas/certificate/v1", "https://lethe.dev/schemas/certificate/v2"];
if (!schemas.includes(claims.schema)) fail(`unknown certificate schema ${claims.schema}`);
const sources = (l) => (l && l.length ? l.map((s) => `${s.kind} from ${s.from}`).join(", ") : "not recorded");
console.log(`  completed ${claims.completed_at}, deadline ${claims.deadline_met ? "met" : "MISSED"} (due ${claims.due_at})`);
if (claims.extension) {
  console.log(`  deadline extended on ${claims.extension.extended_at} from ${claims.original_due_at}: ${claims.extension.basis}`);
}
for (const l of claims.resolution || []) {
  console.log(`  look-up ${l.connector}: ${l.outcome}, by ${sources(l.looked_up_by)}, found ${l.found.join(", ") || "nothing more"}`);
}
for (const s of claims.systems) {
  const records = s.records_erased === "unknown" ? "an unknown number of" : s.records_erased;
  const what = s.outcome === "not_applicable" ? `not applicable: ${s.not_applicable_reason}` : `${records} record(s), searched by ${sources(s.searched_by)}`;
  console.log(`  ${s.connector}: ${s.outcome}, ${what}`);
  if (attested[s.connector]) console.log(`    ${attested[s.connector]}`);
}
console.log(`  leaf ${log.index} of log ${log.origin}, checkpoint of ${log.tree_size} signed with key ${signedBy}`);

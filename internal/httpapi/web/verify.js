// Lethe certificate verifier for browsers and Node.js (ES module, no
// dependencies, WebCrypto only). It checks what `lethe cert verify` checks:
// the EdDSA signature, that the key is in the published key set, that the
// readable copy says what was signed, the evidence digests, and that the
// certificate is in the transparency log: the inclusion proof (RFC 9162)
// leads to the root of a checkpoint (C2SP signed note) signed by a known key.
// It reads payload schemas v1 and v2, and checks processors' signed
// receipts (evidence of kind processor_receipt) with the processor's key.

const enc = new TextEncoder();

export const SCHEMAS = ["https://lethe.dev/schemas/certificate/v1", "https://lethe.dev/schemas/certificate/v2"];
const subtle = globalThis.crypto.subtle;

function b64urlToBytes(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4);
  return b64ToBytes(b64);
}

function b64ToBytes(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function bytesToB64url(b) {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) { out.set(p, i); i += p.length; }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

async function sha256(bytes) {
  return new Uint8Array(await subtle.digest("SHA-256", bytes));
}

function hex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// canonical is RFC 8785 for the JSON Lethe writes: keys sorted by UTF-16
// code units (JavaScript's default sort), ECMAScript number and string
// serialisation (JSON.stringify's).
export function canonical(v) {
  if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
  if (v !== null && typeof v === "object") {
    return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canonical(v[k])).join(",") + "}";
  }
  return JSON.stringify(v);
}

async function ed25519Verify(x, message, signature) {
  const key = await subtle.importKey("raw", x, { name: "Ed25519" }, false, ["verify"]);
  return subtle.verify({ name: "Ed25519" }, key, signature, message);
}

// thumbprint is the RFC 7638 key id of an Ed25519 JWK.
async function thumbprint(x) {
  return bytesToB64url(await sha256(enc.encode(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`)));
}

async function knownKey(jwks, kid) {
  for (const k of (jwks && jwks.keys) || []) {
    if (k.kid === kid && k.kty === "OKP" && k.crv === "Ed25519" && (await thumbprint(k.x)) === kid) {
      return b64urlToBytes(k.x);
    }
  }
  return null;
}

// leafData is the transparency log leaf of a certificate.
async function leafData(doc) {
  const digest = await sha256(enc.encode(doc.protected + "." + doc.payload + "." + doc.signature));
  return enc.encode("lethe-log/v1 certificate " + bytesToB64url(digest) + "\n");
}

// rootFromInclusionProof follows RFC 9162 section 2.1.3.2.
async function rootFromInclusionProof(index, size, leafHash, proof) {
  if (index < 0 || index >= size) throw new Error(`leaf ${index} is outside a tree of ${size}`);
  let fn = index, sn = size - 1, r = leafHash;
  const node = (l, rt) => sha256(concat(new Uint8Array([1]), l, rt));
  for (const p of proof) {
    if (sn === 0) throw new Error("the inclusion proof is too long");
    if (fn % 2 === 1 || fn === sn) {
      r = await node(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      }
    } else {
      r = await node(r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error("the inclusion proof is too short");
  return r;
}

// openCheckpoint verifies a C2SP checkpoint signed by one of the keys.
async function openCheckpoint(note, origin, jwks) {
  const split = note.indexOf("\n\n");
  if (split < 0) throw new Error("the checkpoint is not a signed note");
  const body = note.slice(0, split + 1);
  const lines = body.split("\n");
  if (lines.length < 4 || lines[0] !== origin) throw new Error(`the checkpoint is not for log ${origin}`);
  const size = Number(lines[1]);
  if (!Number.isSafeInteger(size) || String(size) !== lines[1]) throw new Error("the checkpoint size is not a number");
  const root = b64ToBytes(lines[2]);
  let time = null;
  for (const l of lines.slice(3)) if (l.startsWith("time ")) time = new Date(Number(l.slice(5)) * 1000);
  for (const line of note.slice(split + 2).split("\n")) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m || m[1] !== origin) continue;
    const sig = b64ToBytes(m[2]);
    if (sig.length !== 68) continue;
    for (const k of (jwks && jwks.keys) || []) {
      const x = b64urlToBytes(k.x);
      const keyHash = (await sha256(concat(enc.encode(origin + "\n"), new Uint8Array([1]), x))).slice(0, 4);
      if (equal(keyHash, sig.slice(0, 4)) && (await ed25519Verify(x, enc.encode(body), sig.slice(4)))) {
        return { size, root, time, kid: k.kid };
      }
    }
  }
  throw new Error("the checkpoint is not signed by any key in the key set");
}

// verifyCertificate checks a certificate document (its JSON text) against a
// JWKS. It never throws: the result lists every check with its outcome.
// checkReceipt verifies a processor's receipt in system s: the key is the
// one the kid names, the processor's signature covers the signed bytes,
// and they attest the completion of the request the system's evidence
// names. It returns the key id and the signing time, or throws.
async function checkReceipt(s, ev) {
  let r;
  try { r = JSON.parse(ev.value); } catch { r = null; }
  if (!r || r.v !== 1) throw new Error("it is not a version 1 receipt");
  const der = b64ToBytes(r.key), signed = b64ToBytes(r.signed), sig = b64ToBytes(r.sig);
  if ("sha256:" + hex(await sha256(der)) !== r.kid) throw new Error("its key is not the one its key id names");
  const alg = r.alg === "Ed25519" ? { name: "Ed25519" } : r.alg === "RS256" ? { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } : null;
  let ok = false;
  try {
    const key = await subtle.importKey("spki", der, alg, false, ["verify"]);
    ok = (r.alg !== "RS256" || key.algorithm.modulusLength >= 2048) && (await subtle.verify(alg, key, sig, signed));
  } catch {
    ok = false;
  }
  if (!ok) throw new Error("the processor's signature does not verify");
  let text = new TextDecoder().decode(signed), signedAt = null;
  if (!text.startsWith("{")) {
    const i = text.indexOf(".");
    if (i < 1 || !/^[0-9]+$/.test(text.slice(0, i))) throw new Error("its signed bytes are not a timestamp and a body");
    signedAt = new Date(Number(text.slice(0, i)) * 1000);
    text = text.slice(i + 1);
  }
  let body;
  try { body = JSON.parse(text); } catch { body = {}; }
  if (body.request_status !== "completed") throw new Error(`it says "${body.request_status}", not completed`);
  if (s.outcome !== "erased" && s.outcome !== "not_found") throw new Error(`the system was ${s.outcome}`);
  const rid = ((s.evidence || []).find((e) => e.kind === "subject_request_id") || {}).value;
  if (!rid || typeof body.subject_request_id !== "string" || body.subject_request_id.toLowerCase() !== rid.toLowerCase()) {
    throw new Error("it is for another request than the system's");
  }
  return { kid: r.kid, signedAt };
}

export async function verifyCertificate(text, jwks, options = {}) {
  const checks = [];
  const result = { valid: false, checks, payload: null, kid: null, log: null, reason: null };
  const fail = (id, msg) => { checks.push({ id, ok: false, text: msg }); result.reason = msg; return result; };
  const pass = (id, msg) => checks.push({ id, ok: true, text: msg });

  let doc, header;
  try {
    doc = JSON.parse(text);
    header = JSON.parse(new TextDecoder().decode(b64urlToBytes(doc.protected)));
  } catch {
    return fail("format", "This is not a Lethe certificate file.");
  }
  if (header.alg !== "EdDSA" || header.typ !== "lethe-certificate+jws" || !header.kid) {
    return fail("format", `Unexpected certificate header (algorithm ${header.alg}).`);
  }
  result.kid = header.kid;
  const pub = await knownKey(jwks, header.kid);
  if (!pub) return fail("key", `The signing key ${header.kid} is not one of the organisation's published keys.`);
  pass("key", `Signed with key ${header.kid}, one of the organisation's published keys.`);

  let signed;
  try {
    signed = await ed25519Verify(pub, enc.encode(doc.protected + "." + doc.payload), b64urlToBytes(doc.signature));
  } catch {
    signed = false;
  }
  if (!signed) return fail("signature", "The signature does not match: the certificate was altered after it was signed.");
  pass("signature", "The signature is valid: the certificate is exactly as the organisation signed it.");

  const payloadText = new TextDecoder().decode(b64urlToBytes(doc.payload));
  const payload = JSON.parse(payloadText);
  if (canonical(payload) !== payloadText) return fail("canonical", "The signed payload is not in canonical form.");
  if (doc.certificate !== undefined && canonical(doc.certificate) !== payloadText) {
    return fail("copy", "The readable copy in the file differs from what was signed: it was edited.");
  }
  if (!SCHEMAS.includes(payload.schema)) return fail("schema", `Unknown certificate schema ${payload.schema}: this verifier reads versions 1 and 2.`);
  result.payload = payload;
  for (const s of [...(payload.systems || []), ...(payload.resolution || [])]) {
    const digest = "sha256:" + hex(await sha256(enc.encode(canonical(s.evidence))));
    if (digest !== s.evidence_digest) return fail("evidence", `The evidence of ${s.connector} does not match its digest.`);
  }
  pass("evidence", "Every system's evidence matches its digest.");

  result.receipts = [];
  for (const s of payload.systems || []) {
    const receipts = (s.evidence || []).filter((e) => e.kind === "processor_receipt");
    if (receipts.length > 1) return fail("receipt", `${s.connector} carries two processor receipts.`);
    for (const ev of receipts) {
      try {
        result.receipts.push({ connector: s.connector, ...(await checkReceipt(s, ev)) });
      } catch (e) {
        return fail("receipt", `The processor's receipt of ${s.connector} does not hold: ${e.message}.`);
      }
    }
  }
  if (result.receipts.length > 0) {
    pass("receipt", result.receipts.map((r) => `${r.connector}: the processor itself attested completion (key ${r.kid}` +
      (r.signedAt ? `, signed ${utcText(r.signedAt)}` : "") + ").").join(" "));
  }

  const log = doc.log;
  if (!log) return fail("log", "The certificate carries no transparency log proof.");
  if (options.origin && log.origin !== options.origin) return fail("log", `The certificate is in log ${log.origin}, not ${options.origin}.`);
  try {
    const cp = await openCheckpoint(log.checkpoint, log.origin, jwks);
    if (cp.size !== log.tree_size) throw new Error("the proof and the checkpoint are for different tree sizes");
    const leafHash = await sha256(concat(new Uint8Array([0]), await leafData(doc)));
    const root = await rootFromInclusionProof(log.index, log.tree_size, leafHash, log.inclusion_proof.map(b64ToBytes));
    if (!equal(root, cp.root)) throw new Error("the inclusion proof does not lead to the checkpoint's root");
    result.log = { origin: log.origin, index: log.index, treeSize: cp.size, time: cp.time };
    pass("log", `Included in the transparency log ${log.origin} as entry ${log.index}, in the signed checkpoint of ${cp.size} entries` +
      (cp.time ? ` of ${utcText(cp.time)}` : "") + ".");
  } catch (e) {
    return fail("log", "Transparency log: " + e.message + ".");
  }
  result.valid = true;
  return result;
}

// utcText writes a time the one way the auditor page does:
// "2026-12-06 13:07:49 UTC".
export function utcText(d) {
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

// verifyRechecks checks the re-checks of a certificate: checkpointNote is
// the log's latest signed checkpoint (GET /v1/log/checkpoint), answer the
// JSON of GET /v1/certificates/{id}/rechecks?size=<its size>. The
// checkpoint must be signed by a key in jwks; each leaf must be in its tree
// and name certificateId. It returns the checkpoint's size and, per leaf,
// {index, ok, recheck} or {index, ok: false, error}.
export async function verifyRechecks(certificateId, origin, jwks, checkpointNote, answer) {
  const cp = await openCheckpoint(checkpointNote, origin, jwks);
  if (!answer || !Array.isArray(answer.rechecks)) throw new Error("the log's answer lists no re-checks");
  const out = [];
  for (const r of answer.rechecks) {
    try {
      const data = b64ToBytes(r.leaf_data);
      if (!r.proof || r.proof.index !== r.index || r.proof.tree_size !== cp.size) {
        throw new Error("its proof is for another leaf or tree");
      }
      const leafHash = await sha256(concat(new Uint8Array([0]), data));
      const root = await rootFromInclusionProof(r.index, cp.size, leafHash, r.proof.hashes.map(b64ToBytes));
      if (!equal(root, cp.root)) throw new Error("it is not in the log's signed tree");
      const text = new TextDecoder().decode(data);
      const prefix = "lethe-log/v1 recheck ";
      if (!text.startsWith(prefix)) throw new Error("it is not a re-check leaf");
      const recheck = JSON.parse(text.slice(prefix.length));
      if (recheck.certificate_id !== certificateId) throw new Error(`it re-checks certificate ${recheck.certificate_id}, not this one`);
      out.push({ index: r.index, ok: true, recheck });
    } catch (e) {
      out.push({ index: r.index, ok: false, error: e.message });
    }
  }
  return { size: cp.size, time: cp.time, rechecks: out };
}

// verifyCommitment checks that an email and the nonce the person was given
// open the certificate's subject commitment.
export async function verifyCommitment(payload, email, nonceB64url) {
  if (!payload || !payload.subject || !payload.subject.commitment) return false;
  const e = email.trim().toLowerCase();
  const msg = concat(enc.encode("lethe-commitment/v1\0"), b64urlToBytes(nonceB64url), new Uint8Array([0]), enc.encode(e));
  return "sha256:" + hex(await sha256(msg)) === payload.subject.commitment;
}

// Defendable receipt verifier for the browser: the JavaScript mirror of
// libs/canonical/defendable_canonical/verification.py and verify_transparency.py.
//
// Dependency-free ES module. It never fetches anything: give it the receipt document
// (the body of GET /share/{token}) and the key set (GET /.well-known/defendable-keys.json,
// or a copy pinned beforehand), and it answers one {name, outcome, detail} per check,
// outcome "PASS", "FAIL" or "SKIPPED" (not applicable: never a silent pass).
//
//   canonical form (RFC 8785)        the payload has a JCS form (canonicalize below)
//   receipt hash                     "sha256:" + hex SHA-256 of it equals doc.receipt_hash
//   receipt schema                   payload.schema names a receipt kind (receipt.py PAYLOAD_TYPES)
//   signature (Ed25519)              over the 32 raw bytes of the receipt hash, by the key it carries
//   signing key known                that key is in the key set
//   chain position                   seq and parent; seq 1 must have the genesis parent
//   proof package (C2SP tlog-proof)  doc.transparency.proof parses and names this receipt
//   log origin                       the checkpoint is of <origin_prefix>/<org_id>
//   leaf index                       the receipt at seq s is leaf s - 1
//   inclusion proof (RFC 9162)       the path leads from the receipt's leaf to the checkpoint root
//   log key known                    a key of the key set signed the checkpoint, as its origin
//   checkpoint signature (log key)   that signed-note signature verifies
//   witness cosignatures             cosignature/v1 lines of the listed witnesses verify (k of n)
//
// Hashing and Ed25519 use WebCrypto (crypto.subtle), which browsers offer in secure
// contexts only: https://, http://localhost and file:// pages.

export const CANONICAL = "canonical form (RFC 8785)";
export const HASH = "receipt hash";
export const SCHEMA = "receipt schema";
export const SIGNATURE = "signature (Ed25519)";
export const SIGNING_KEY = "signing key known";
export const CHAIN = "chain position";
export const PROOF = "proof package (C2SP tlog-proof)";
export const ORIGIN = "log origin";
export const LEAF = "leaf index";
export const INCLUSION = "inclusion proof (RFC 9162)";
export const LOG_KEY = "log key known";
export const LOG_SIGNATURE = "checkpoint signature (log key)";
export const WITNESSES = "witness cosignatures";
export const REDACTED = "redacted fields";
export const REVEALED = "revealed fields";
export const RECEIPT_CHECKS = Object.freeze([CANONICAL, HASH, SCHEMA, SIGNATURE, SIGNING_KEY, CHAIN, REDACTED]);
export const TRANSPARENCY_CHECKS = Object.freeze([PROOF, ORIGIN, LEAF, INCLUSION, LOG_KEY, LOG_SIGNATURE, WITNESSES]);

// receipt.py PAYLOAD_TYPES: a schema not listed here is no receipt of ours.
export const RECEIPT_SCHEMAS = Object.freeze([
  "defendablecloud.eval-receipt/v1",
  "defendablecloud.receipt/v1",
  "defendablecloud.cook-receipt/v1",
  "defendablecloud.incident-receipt/v1",
  "defendablecloud.unlock-receipt/v1",
]);
export const GENESIS_HASH = "sha256:" + "0".repeat(64);

const MAX_DEPTH = 256; // jcs.py
const HASH_SIZE = 32; // merkle.py
const MAX_TREE_SIZE = (1n << 63n) - 1n;
const MAX_PROOF_HASHES = 64;
const MAX_NOTE_BYTES = 256 * 1024; // note.py
const MAX_SIGNATURES = 100;
const MAX_KEY_NAME_BYTES = 255;
const MAX_SIGNATURE_BYTES = 8 * 1024;
const MAX_TLOG_PROOF_BYTES = MAX_NOTE_BYTES + 16 * 1024; // tlog_proof.py
const MAX_ORIGIN_BYTES = 255; // checkpoint.py
const MAX_EXTENSION_LINES = 16;
const MAX_EXTENSION_BYTES = 1024;
const MAX_TIMESTAMP = (1n << 63n) - 1n; // cosignature.py
const ED25519 = 0x01; // signed-note signature types
const COSIGNATURE_V1 = 0x04;
const TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1";
const SIG_PREFIX = "\u2014 "; // EM DASH, SPACE
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const DECIMAL = /^(0|[1-9][0-9]{0,18})$/;
const KEY_ID_HEX = /^[0-9a-f]{8}$/;
const NOTE_CONTROL = /[\x00-\x09\x0b-\x1f]/;
const CONTROL = /[\x00-\x1f]/;
// note.py _NOT_IN_NAME: Python's \s (str.isspace), plus and control characters
const NOT_IN_NAME = /[\t\n\v\f\r \x00-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000+]/;

const utf8 = new TextEncoder();

class CheckError extends Error {}
// WebCrypto is missing or lacks Ed25519: the check cannot be made here, which is a FAIL that says so.
class CryptoUnavailable extends Error {}

// ---------------------------------------------------------------- RFC 8785 (JCS)

/** RFC 8785 canonical JSON text of a parsed JSON value (object, array, string, number, boolean, null).
 *  Throws an Error naming the path and the reason for anything without a canonical form. */
export function canonicalize(value) {
  const out = [];
  emit(value, out, []);
  return out.join("");
}

/** The UTF-8 bytes of `canonicalize(value)`: what the receipt hash is computed over. */
export function canonicalBytes(value) {
  return utf8.encode(canonicalize(value));
}

function formatPath(path) {
  const shown = path.length <= 16 ? path : path.slice(0, 16);
  let text = "$";
  for (const segment of shown) {
    if (typeof segment === "number") text += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(segment)) text += `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  if (path.length > shown.length) text += `...(${path.length - shown.length} levels more)`;
  return text;
}

function canonicalError(path, problem) {
  return new CheckError(`${formatPath(path)}: ${problem}`);
}

function loneSurrogate(text) {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return i;
    }
    if (c >= 0xdc00 && c <= 0xdfff) return i;
  }
  return -1;
}

function hex4(code) {
  return code.toString(16).padStart(4, "0");
}

// RFC 8785 §3.2.2.2: escape only '"', '\' and U+0000-U+001F, with the five short forms.
const SHORT_ESCAPES = { 0x08: "\\b", 0x09: "\\t", 0x0a: "\\n", 0x0c: "\\f", 0x0d: "\\r" };

function jcsString(text, path, what) {
  const bad = loneSurrogate(text);
  if (bad >= 0) {
    const unit = hex4(text.charCodeAt(bad)).toUpperCase();
    throw canonicalError(path, `${what} holds a lone surrogate U+${unit} at index ${bad}; JSON text must be UTF-8`);
  }
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c < 0x20) out += SHORT_ESCAPES[c] || `\\u${hex4(c)}`;
    else out += text[i];
  }
  return out + '"';
}

function emit(value, out, path) {
  if (typeof value === "string") {
    out.push(jcsString(value, path, "string"));
  } else if (value === null) {
    out.push("null");
  } else if (value === true) {
    out.push("true");
  } else if (value === false) {
    out.push("false");
  } else if (typeof value === "number") {
    // RFC 8785 §3.2.2.3 is ECMAScript's Number::toString, which String() is; -0 prints "0".
    if (!Number.isFinite(value)) {
      throw canonicalError(path, `number ${value} has no JSON form (RFC 8785 §3.2.2.3 forbids NaN and Infinity)`);
    }
    out.push(String(value));
  } else if (Array.isArray(value)) {
    if (path.length >= MAX_DEPTH) throw canonicalError(path, `nesting deeper than ${MAX_DEPTH} levels`);
    out.push("[");
    value.forEach((item, index) => {
      if (index) out.push(",");
      path.push(index);
      emit(item, out, path);
      path.pop();
    });
    out.push("]");
  } else if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    if (path.length >= MAX_DEPTH) throw canonicalError(path, `nesting deeper than ${MAX_DEPTH} levels`);
    // §3.2.3: members sorted by the UTF-16 code units of their keys: JavaScript's own string order.
    const keys = Object.keys(value);
    for (const key of keys) {
      if (loneSurrogate(key) >= 0) jcsString(key, path, `key ${JSON.stringify(key)}`);
    }
    keys.sort();
    out.push("{");
    keys.forEach((key, index) => {
      if (index) out.push(",");
      out.push(jcsString(key, path, "key"));
      out.push(":");
      path.push(key);
      emit(value[key], out, path);
      path.pop();
    });
    out.push("}");
  } else {
    const kind = value === undefined ? "undefined" : typeof value === "object" ? value.constructor?.name : typeof value;
    throw canonicalError(path, `type ${kind} is not a JSON type (object, array, string, number, boolean, null)`);
  }
}

// ---------------------------------------------------------------- bytes, hashes, base64

function subtle(options) {
  const found = options?.subtle || globalThis.crypto?.subtle;
  if (!found) {
    throw new CryptoUnavailable(
      "this browser offers no WebCrypto here: open the page over https:// (a secure context) to verify",
    );
  }
  return found;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function equalBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function sha256(bytes, options) {
  return new Uint8Array(await subtle(options).digest("SHA-256", bytes));
}

/** "sha256:" + hex SHA-256 of the bytes. */
export async function sha256Digest(bytes, options) {
  return "sha256:" + toHex(await sha256(bytes, options));
}

/** RFC 4648 §4 base64, canonical only: padded, no stray characters or non-zero pad bits (note.py). */
export function b64decodeStrict(text) {
  let binary = null;
  if (typeof text === "string" && text.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    try {
      binary = atob(text);
    } catch {
      binary = null;
    }
  }
  if (binary === null) throw new CheckError(`not base64: ${JSON.stringify(String(text).slice(0, 40))}`);
  if (btoa(binary) !== text) throw new CheckError(`not canonical base64: ${JSON.stringify(text.slice(0, 40))}`);
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
}

/** base64url without padding, canonical only (signature.py b64url_strict). */
export function b64urlStrict(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new CheckError(`not base64url: ${JSON.stringify(String(text).slice(0, 40))}`);
  }
  const standard = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(standard + "=".repeat((4 - (standard.length % 4)) % 4));
  const again = btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  if (again !== text) throw new CheckError(`not canonical base64url: ${JSON.stringify(text.slice(0, 40))}`);
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
}

function digestBytes(digest) {
  if (typeof digest !== "string" || !DIGEST.test(digest)) {
    throw new CheckError(`not a sha256 digest: ${JSON.stringify(String(digest).slice(0, 80))}`);
  }
  return fromHex(digest.slice("sha256:".length));
}

function short(digest) {
  return digest.length > 19 ? digest.slice(0, 19) + ".." : digest;
}

function utf8Length(text) {
  return utf8.encode(text).length;
}

/** Ed25519 through WebCrypto; false for a signature that does not verify or a key that is no point. */
async function ed25519Verify(publicKey, signature, message, options) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const api = subtle(options);
  let key;
  try {
    key = await api.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch (exc) {
    if (exc?.name === "NotSupportedError") {
      throw new CryptoUnavailable("this browser's WebCrypto has no Ed25519: use a current browser to verify");
    }
    return false;
  }
  try {
    return await api.verify({ name: "Ed25519" }, key, signature, message);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- RFC 9162 Merkle tree (merkle.py)

export async function leafHash(data, options) {
  return sha256(concat(Uint8Array.of(0), data), options);
}

async function nodeHash(left, right, options) {
  return sha256(concat(Uint8Array.of(1), left, right), options);
}

function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

function bitCount(n) {
  let count = 0;
  for (const ch of n.toString(2)) if (ch === "1") count++;
  return count;
}

/** RFC 9162 §2.1.3.2 steps 1-5: the root that `proof` leads to from `leaf` at `index` (BigInts). */
export async function rootFromInclusionProof(leaf, index, size, proof, options) {
  index = BigInt(index);
  size = BigInt(size);
  if (size < 0n || size > MAX_TREE_SIZE) throw new CheckError(`tree size ${size} is outside 0..${MAX_TREE_SIZE}`);
  if (index < 0n || index >= size) throw new CheckError(`leaf index ${index} is not in a tree of size ${size}`);
  if (leaf.length !== HASH_SIZE) throw new CheckError(`leaf hash hash 0 is ${leaf.length} bytes, not ${HASH_SIZE}`);
  if (proof.length > MAX_PROOF_HASHES) {
    throw new CheckError(`inclusion proof has ${proof.length} hashes, more than ${MAX_PROOF_HASHES}`);
  }
  proof.forEach((h, i) => {
    if (h.length !== HASH_SIZE) throw new CheckError(`inclusion proof hash ${i} is ${h.length} bytes, not ${HASH_SIZE}`);
  });
  // The expected length, as merkle.py computes it: the levels below the point where the paths
  // to `index` and `size - 1` part, plus the left siblings above it.
  const inner = bitLength(index ^ (size - 1n));
  const expected = inner + bitCount(index >> BigInt(inner));
  if (proof.length !== expected) {
    throw new CheckError(
      `inclusion proof for leaf ${index} of ${size} has ${proof.length} hashes, expected ${expected}`,
    );
  }
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new CheckError(`inclusion proof for leaf ${index} of ${size} is too long`); // 5a
    if (fn & 1n || fn === sn) {
      // 5b
      r = await nodeHash(p, r, options);
      while (fn !== 0n && (fn & 1n) === 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p, options);
    }
    fn >>= 1n; // 5c
    sn >>= 1n;
  }
  if (sn !== 0n) throw new CheckError(`inclusion proof for leaf ${index} of ${size} is too short`); // 6
  return r;
}

// ---------------------------------------------------------------- C2SP signed-note (note.py)

function isValidKeyName(name) {
  return typeof name === "string" && name.length > 0 && utf8Length(name) <= MAX_KEY_NAME_BYTES && !NOT_IN_NAME.test(name);
}

/** signed-note key id: SHA-256(name || 0x0A || type || public key)[:4], as an unsigned 32-bit number. */
export async function noteKeyId(name, keyType, publicKey, options) {
  const digest = await sha256(concat(utf8.encode(name + "\n"), Uint8Array.of(keyType), publicKey), options);
  return new DataView(digest.buffer).getUint32(0);
}

function keyIdHex(id) {
  return id.toString(16).padStart(8, "0");
}

function checkNoteText(text) {
  if (!text.endsWith("\n")) throw new CheckError("note text does not end with a newline");
  if (text === "\n" || text.endsWith("\n\n")) throw new CheckError("note text ends with an empty line");
}

/** signed-note §Format, strictly: {text, signatures: [{name, keyId, signature}]}. */
export function parseNote(whole) {
  const bytes = utf8Length(whole);
  if (bytes > MAX_NOTE_BYTES) throw new CheckError(`note is ${bytes} bytes, more than ${MAX_NOTE_BYTES}`);
  if (loneSurrogate(whole) >= 0) throw new CheckError("note is not UTF-8");
  const control = NOTE_CONTROL.exec(whole);
  if (control) {
    throw new CheckError(`note has control character ${JSON.stringify(control[0])} at offset ${control.index}`);
  }
  const split = whole.lastIndexOf("\n\n"); // the text ends at the last empty line
  if (split < 0) throw new CheckError("note has no blank line before its signatures");
  const text = whole.slice(0, split + 1);
  const block = whole.slice(split + 2);
  checkNoteText(text);
  if (!block.endsWith("\n")) throw new CheckError("note does not end with a signature line and a newline");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) {
    throw new CheckError(`note has ${lines.length} signatures, more than ${MAX_SIGNATURES}`);
  }
  const signatures = lines.map((line, i) => {
    const number = i + 1;
    if (!line.startsWith(SIG_PREFIX)) {
      throw new CheckError(`signature line ${number} does not start with an em dash and a space`);
    }
    const rest = line.slice(SIG_PREFIX.length);
    const space = rest.indexOf(" ");
    const name = space < 0 ? rest : rest.slice(0, space);
    if (space < 0 || !isValidKeyName(name)) throw new CheckError(`signature line ${number} has no valid key name`);
    let blob;
    try {
      blob = b64decodeStrict(rest.slice(space + 1));
    } catch (exc) {
      throw new CheckError(`signature line ${number}: ${exc.message}`);
    }
    if (blob.length < 5 || blob.length > 4 + MAX_SIGNATURE_BYTES) {
      throw new CheckError(`signature line ${number} holds ${blob.length} bytes, not 5..${4 + MAX_SIGNATURE_BYTES}`);
    }
    return { name, keyId: new DataView(blob.buffer).getUint32(0), signature: blob.slice(4) };
  });
  return { text, signatures };
}

/** A vkey <name>+<hex key id>+<base64(type || public key)>; the id must match the key. */
export async function parseVkey(vkey, options) {
  if (typeof vkey !== "string") throw new CheckError("a verifier key must be a string");
  const plus1 = vkey.indexOf("+");
  const plus2 = plus1 < 0 ? -1 : vkey.indexOf("+", plus1 + 1);
  const name = vkey.slice(0, plus1);
  const idHex = vkey.slice(plus1 + 1, plus2);
  if (plus1 < 0 || plus2 < 0 || !isValidKeyName(name) || !KEY_ID_HEX.test(idHex)) {
    throw new CheckError(`malformed verifier key ${JSON.stringify(vkey.slice(0, 80))}`);
  }
  const key = b64decodeStrict(vkey.slice(plus2 + 1));
  if (!key.length) throw new CheckError(`verifier key ${name}+${idHex} has no key material`);
  const expected = await noteKeyId(name, key[0], key.slice(1), options);
  if (parseInt(idHex, 16) !== expected) {
    throw new CheckError(`verifier key ${name}+${idHex} does not match its key (id ${keyIdHex(expected)})`);
  }
  return { name, keyId: expected, keyType: key[0], publicKey: key.slice(1) };
}

// ---------------------------------------------------------------- C2SP tlog-checkpoint (checkpoint.py)

/** tlog-checkpoint §Note text, strictly: {origin, size (BigInt), rootHash, extensions}. */
export async function parseCheckpoint(text, options) {
  if (!text.endsWith("\n")) throw new CheckError("checkpoint text does not end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new CheckError(`checkpoint has ${lines.length} lines, fewer than 3`);
  const empty = lines.indexOf("");
  if (empty >= 0) throw new CheckError(`checkpoint line ${empty + 1} is empty`);
  const [origin, sizeText, root64, ...extensions] = lines;
  if (!DECIMAL.test(sizeText)) {
    throw new CheckError(`checkpoint size ${JSON.stringify(sizeText.slice(0, 40))} is not a decimal without leading zeros`);
  }
  let rootHash;
  try {
    rootHash = b64decodeStrict(root64);
  } catch (exc) {
    throw new CheckError(`checkpoint root hash: ${exc.message}`);
  }
  const size = BigInt(sizeText);
  const originBytes = utf8Length(origin);
  if (originBytes === 0 || originBytes > MAX_ORIGIN_BYTES || CONTROL.test(origin)) {
    throw new CheckError(`checkpoint origin ${JSON.stringify(origin.slice(0, 80))} is empty, too long or has a control code`);
  }
  if (size > MAX_TREE_SIZE) throw new CheckError(`checkpoint size ${size} is outside 0..${MAX_TREE_SIZE}`);
  if (rootHash.length !== HASH_SIZE) {
    throw new CheckError(`checkpoint root hash is ${rootHash.length} bytes, not ${HASH_SIZE}`);
  }
  if (size === 0n && !equalBytes(rootHash, await sha256(new Uint8Array(0), options))) {
    throw new CheckError("checkpoint of the empty tree does not have the empty tree's root");
  }
  if (extensions.length > MAX_EXTENSION_LINES) {
    throw new CheckError(`checkpoint has ${extensions.length} extensions, more than ${MAX_EXTENSION_LINES}`);
  }
  extensions.forEach((line, i) => {
    if (utf8Length(line) > MAX_EXTENSION_BYTES || CONTROL.test(line)) {
      throw new CheckError(`checkpoint extension line ${i + 1} is empty, too long or has a control code`);
    }
  });
  return { origin, size, rootHash, extensions };
}

// ---------------------------------------------------------------- C2SP tlog-proof (tlog_proof.py)

/** tlog-proof §Format, strictly: {extra (bytes|null), index (BigInt), hashes, checkpoint (note text)}. */
export function parseTlogProof(data) {
  if (typeof data !== "string") throw new CheckError("the proof is not text");
  if (loneSurrogate(data) >= 0) throw new CheckError("proof package is not UTF-8");
  const bytes = utf8Length(data);
  if (bytes > MAX_TLOG_PROOF_BYTES) {
    throw new CheckError(`proof package is ${bytes} bytes, more than ${MAX_TLOG_PROOF_BYTES}`);
  }
  const split = data.indexOf("\n\n"); // proof hash lines are non-empty: the first blank line ends them
  if (split < 0) throw new CheckError("proof package has no blank line before its checkpoint");
  const head = data.slice(0, split);
  const nonAscii = head.search(/[^\x00-\x7f]/);
  if (nonAscii >= 0) throw new CheckError(`proof package is not ASCII at character ${nonAscii}`);
  const lines = head.split("\n");
  if (lines[0] !== TLOG_PROOF_HEADER) {
    throw new CheckError(`proof package does not start with ${JSON.stringify(TLOG_PROOF_HEADER)}`);
  }
  const b64 = (text, what) => {
    try {
      return b64decodeStrict(text);
    } catch (exc) {
      throw new CheckError(`proof package ${what}: ${exc.message}`);
    }
  };
  let extra = null;
  let at = 1;
  if (at < lines.length && lines[at].startsWith("extra ")) {
    extra = b64(lines[at].slice("extra ".length), "extra data");
    at++;
    if (!extra.length) throw new CheckError("proof package has an empty extra line");
  }
  const index = at < lines.length ? /^index (0|[1-9][0-9]{0,18})$/.exec(lines[at]) : null;
  if (!index) {
    throw new CheckError(`proof package line ${at + 1} is not 'index <decimal without leading zeros>'`);
  }
  const hashes = lines.slice(at + 1).map((line, i) => b64(line, `proof hash ${i}`));
  if (hashes.length > MAX_PROOF_HASHES || hashes.some((h) => h.length !== HASH_SIZE)) {
    throw new CheckError(
      `proof package's ${hashes.length} proof hashes are not all ${HASH_SIZE} bytes, or too many`,
    );
  }
  const checkpoint = data.slice(split + 2);
  let note;
  try {
    note = parseNote(checkpoint);
  } catch (exc) {
    throw new CheckError(`proof package's checkpoint: ${exc.message}`);
  }
  const leaf = BigInt(index[1]);
  if (leaf >= MAX_TREE_SIZE) throw new CheckError(`proof package index ${index[1]} is too large`);
  return { extra, index: leaf, hashes, checkpoint, note };
}

// ---------------------------------------------------------------- keys

/** The key set as a verifier reads it: {keys: [{kid, publicKey, status}], originPrefix, witnesses, problem}. */
async function readKeySet(keys, options) {
  if (keys === null || keys === undefined) return { problem: "no key set was given", keys: [] };
  if (typeof keys !== "object" || !Array.isArray(keys.keys) || !keys.keys.length) {
    return { problem: "the key set lists no keys ({keys: [{kid, public_key}, ...]})", keys: [] };
  }
  const read = [];
  for (const entry of keys.keys) {
    const kid = entry?.kid;
    try {
      if (typeof kid !== "string") throw new CheckError("has no kid");
      const publicKey = b64urlStrict(entry.public_key);
      if ((entry.alg ?? "Ed25519") !== "Ed25519" || publicKey.length !== 32) {
        throw new CheckError("is not a raw 32-byte Ed25519 key");
      }
      const expected = toHex(await sha256(publicKey, options)).slice(0, 16);
      if (expected !== kid) throw new CheckError(`does not match its public key (kid ${expected})`);
      read.push({ kid, publicKey, publicKeyText: entry.public_key, status: entry.status || "" });
    } catch (exc) {
      if (exc instanceof CryptoUnavailable) throw exc;
      return { problem: `the key set is unusable: key ${String(kid).slice(0, 40)} ${exc.message}`, keys: [] };
    }
  }
  const prefix = typeof keys.origin_prefix === "string" ? keys.origin_prefix : null;
  return { keys: read, originPrefix: prefix, witnesses: keys.witnesses, problem: null };
}

/** The witnesses a verifier trusts, and how many of them must have cosigned (quorum null: any that did). */
async function readWitnessPolicy(keySet, options) {
  const pinned = options?.witnesses;
  const listed = pinned ?? keySet.witnesses;
  const source = pinned ? "the pinned witnesses" : "the key set";
  let quorum = options?.quorum ?? (pinned ? (Array.isArray(pinned) ? pinned.length : 0) : null);
  if (listed === undefined || listed === null || (Array.isArray(listed) && !listed.length)) {
    if (quorum) throw new CheckError(`a witness quorum of ${quorum} needs witness keys, and none are given`);
    return null;
  }
  if (!Array.isArray(listed)) throw new CheckError(`${source}: witnesses is not a list of {name, vkey}`);
  const cosigners = [];
  for (const entry of listed) {
    const vkey = typeof entry === "string" ? entry : entry?.vkey;
    const parsed = await parseVkey(vkey, options);
    if (parsed.keyType !== COSIGNATURE_V1) {
      throw new CheckError(`witness key ${parsed.name} has type 0x${parsed.keyType.toString(16).padStart(2, "0")}, not 0x04`);
    }
    if (typeof entry === "object" && entry.name !== undefined && entry.name !== parsed.name) {
      throw new CheckError(`witness ${String(entry.name).slice(0, 80)} has a key named ${parsed.name}`);
    }
    if (parsed.publicKey.length !== 32) throw new CheckError(`witness key ${parsed.name} is not a 32-byte Ed25519 key`);
    if (cosigners.some((c) => c.name === parsed.name)) throw new CheckError(`${source} names witness ${parsed.name} twice`);
    cosigners.push(parsed);
  }
  if (quorum !== null && (!Number.isInteger(quorum) || quorum < 1 || quorum > cosigners.length)) {
    throw new CheckError(`witness quorum ${quorum} is not in 1..${cosigners.length}`);
  }
  return { cosigners, quorum, source };
}

function when(timestamp) {
  const ms = Number(timestamp) * 1000;
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return String(timestamp);
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

// ---------------------------------------------------------------- the checks

function check(name, outcome, detail) {
  return { name, outcome, detail };
}

function isPlainObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function failedCheck(name, exc) {
  // A CryptoUnavailable says this browser could not check; anything else is the reason it fails.
  return check(name, "FAIL", exc instanceof CheckError || exc instanceof CryptoUnavailable ? exc.message : `error: ${exc}`);
}

function schemaCheck(payload) {
  const schema = isPlainObject(payload) ? payload.schema : undefined;
  if (typeof schema !== "string" || !RECEIPT_SCHEMAS.includes(schema)) {
    const shown = schema === undefined ? "no schema" : `schema ${JSON.stringify(String(schema).slice(0, 100))}`;
    return check(SCHEMA, "FAIL", `unknown receipt schema: the payload has ${shown}`);
  }
  const problems = [];
  if (typeof payload.org_id !== "string" || !payload.org_id) problems.push("org_id");
  if (!Number.isSafeInteger(payload.seq) || payload.seq < 1) problems.push("seq");
  if (typeof payload.parent_hash !== "string" || !DIGEST.test(payload.parent_hash)) problems.push("parent_hash");
  if (typeof payload.minted_at !== "string") problems.push("minted_at");
  if (problems.length) {
    return check(SCHEMA, "FAIL", `the payload is not a ${schema} receipt: bad or missing ${problems.join(", ")}`);
  }
  return check(SCHEMA, "PASS", `a ${schema} receipt`);
}

const SIGNATURE_MEMBERS = ["alg", "kid", "public_key", "sig"];

async function signatureCheck(raw, claimed, options) {
  if (raw === undefined || raw === null) return check(SIGNATURE, "FAIL", "no signature: every receipt is signed");
  if (!isPlainObject(raw)) return check(SIGNATURE, "FAIL", "malformed signature: not an object");
  const unknown = Object.keys(raw).filter((k) => !SIGNATURE_MEMBERS.includes(k));
  const missing = ["kid", "public_key", "sig"].filter((k) => typeof raw[k] !== "string");
  if (unknown.length || missing.length || (raw.alg ?? "Ed25519") !== "Ed25519") {
    const why = unknown.length ? `unknown member ${unknown[0]}` : missing.length ? `no ${missing[0]}` : `alg ${raw.alg}`;
    return check(SIGNATURE, "FAIL", `malformed signature: ${why}`);
  }
  let publicKey, sig, message;
  try {
    publicKey = b64urlStrict(raw.public_key);
    sig = b64urlStrict(raw.sig);
    message = digestBytes(claimed);
  } catch (exc) {
    return check(SIGNATURE, "FAIL", `malformed signature: ${exc.message}`);
  }
  const kid = toHex(await sha256(publicKey, options)).slice(0, 16);
  if (kid !== raw.kid) {
    return check(SIGNATURE, "FAIL", `key id ${raw.kid} does not match the public key (expected ${kid})`);
  }
  if (!(await ed25519Verify(publicKey, sig, message, options))) {
    return check(SIGNATURE, "FAIL", `Ed25519 signature by ${raw.kid} does not verify for ${claimed}`);
  }
  return check(SIGNATURE, "PASS", `signed by key ${raw.kid}`);
}

function signingKeyCheck(raw, keySet, source) {
  if (keySet.problem) return check(SIGNING_KEY, "FAIL", `${keySet.problem}: cannot tell whether the ledger published this key`);
  const kid = isPlainObject(raw) ? raw.kid : undefined;
  const key = keySet.keys.find((k) => k.kid === kid);
  if (!key) return check(SIGNING_KEY, "FAIL", `key ${String(kid).slice(0, 40)} is not in ${source}`);
  if (key.publicKeyText !== raw.public_key) {
    return check(SIGNING_KEY, "FAIL", `key ${kid} of ${source} is not the public key the signature carries`);
  }
  const status = key.status ? ` (${key.status})` : "";
  return check(SIGNING_KEY, "PASS", `key ${kid}${status} is in ${source}`);
}

// Redacted fields (redaction.py): each listed path holds an HMAC-SHA256 commitment, never the value.
const COMMITMENT = /^hmac-sha256:[0-9a-f]{64}$/;
const REDACTION_PATH = /^(?:evidence\[(0|[1-9][0-9]{0,4})\]\.name|approval\.note|approval\.approver)$/;

/** The member a redaction path names in a payload; undefined when there is none. */
export function redactedValue(payload, path) {
  const at = REDACTION_PATH.exec(path);
  if (!at || !isPlainObject(payload)) return undefined;
  if (at[1] !== undefined) {
    const ref = Array.isArray(payload.evidence) ? payload.evidence[Number(at[1])] : undefined;
    return isPlainObject(ref) ? ref.name : undefined;
  }
  return isPlainObject(payload.approval) ? payload.approval[path.slice("approval.".length)] : undefined;
}

/** The payload's redacted paths: [] when none, null when `redacted` is malformed. */
export function redactedPaths(payload) {
  const listed = isPlainObject(payload) && "redacted" in payload ? payload.redacted : [];
  return Array.isArray(listed) && listed.every((p) => typeof p === "string") ? listed : null;
}

function redactionChecks(payload) {
  const paths = redactedPaths(payload);
  if (paths === null) return [check(REDACTED, "FAIL", "`redacted` is not a list of field paths")];
  if (!paths.length) return [check(REDACTED, "SKIPPED", "no field is redacted: every value is shown as it was")];
  const reveal = check(REVEALED, "SKIPPED", "no disclosures given (defendable verify --reveal FILE reveals redacted fields)");
  if (new Set(paths).size !== paths.length) return [check(REDACTED, "FAIL", "`redacted` names a field twice"), reveal];
  for (const path of paths) {
    if (!REDACTION_PATH.test(path)) {
      return [check(REDACTED, "FAIL", `${JSON.stringify(path.slice(0, 100))} is not a redactable field`), reveal];
    }
    const value = redactedValue(payload, path);
    if (typeof value !== "string" || !COMMITMENT.test(value)) {
      return [check(REDACTED, "FAIL", `${path} is listed as redacted but holds no hmac-sha256 commitment`), reveal];
    }
  }
  return [check(REDACTED, "PASS", `${paths.length} hidden as salted commitments: ${paths.join(", ")}`), reveal];
}

function chainCheck(doc, payload, claimed) {
  const seq = payload.seq;
  const parent = payload.parent_hash;
  if (!Number.isSafeInteger(seq) || seq < 1) return check(CHAIN, "FAIL", "the payload has no positive integer seq");
  if (Array.isArray(doc.links)) return linksCheck(doc.links, seq, parent, claimed);
  if (seq === 1) {
    if (parent === GENESIS_HASH) {
      return check(CHAIN, "PASS", "seq 1, the org's first receipt: its parent is the genesis hash");
    }
    return check(CHAIN, "FAIL", `seq 1 must have parent ${GENESIS_HASH}, not ${String(parent).slice(0, 80)}`);
  }
  return check(
    CHAIN,
    "SKIPPED",
    `seq ${seq}, parent ${short(String(parent))}: chain links are not in a share document; the Merkle proof stands for them`,
  );
}

// chain.py verify_links, for share documents of before the transparency log, which carried links.
function linksCheck(links, seq, parent, claimed) {
  if (!links.length) return check(CHAIN, "FAIL", "no links: the path from genesis is empty");
  let previous = GENESIS_HASH;
  for (let i = 0; i < links.length; i++) {
    const link = links[i];
    const expected = i + 1;
    const linkSeq = link?.seq;
    if (linkSeq !== expected) return check(CHAIN, "FAIL", `seq ${linkSeq}: expected seq ${expected} here`);
    if (typeof link.receipt_hash !== "string" || !DIGEST.test(link.receipt_hash)) {
      return check(CHAIN, "FAIL", `seq ${linkSeq}: receipt_hash is not a sha256 digest`);
    }
    if (link.parent_hash !== previous) {
      const before = expected === 1 ? "genesis" : `seq ${expected - 1}`;
      return check(CHAIN, "FAIL", `seq ${linkSeq}: parent_hash is ${short(String(link.parent_hash))} but ${before} is ${short(previous)}`);
    }
    previous = link.receipt_hash;
  }
  const last = links[links.length - 1];
  if (last.receipt_hash !== claimed) {
    return check(CHAIN, "FAIL", `seq ${last.seq}: path ends at ${short(last.receipt_hash)}, not at the receipt ${short(claimed)}`);
  }
  if (last.seq !== seq || last.parent_hash !== parent) {
    return check(CHAIN, "FAIL", `the last link does not match the payload's seq ${seq} and parent`);
  }
  return check(CHAIN, "PASS", `seq ${seq}: ${links.length} links from genesis to this receipt`);
}

const TRANSPARENCY_MEMBERS = ["origin", "leaf_index", "tree_size", "proof"];

async function transparencyChecks(doc, payload, digest, keySet, source, options) {
  const out = new Map();
  const put = (name, outcome, detail) => out.set(name, check(name, outcome, detail));
  const result = () => TRANSPARENCY_CHECKS.map((name) => out.get(name));
  let policy = null;
  let policyProblem = null;
  try {
    policy = keySet.problem && !options?.witnesses ? null : await readWitnessPolicy(keySet, options);
  } catch (exc) {
    if (exc instanceof CryptoUnavailable) throw exc;
    policyProblem = exc.message;
  }
  const raw = doc.transparency;
  if (raw === undefined || raw === null) {
    for (const name of TRANSPARENCY_CHECKS) put(name, "SKIPPED", "no proof in this document");
    if (policyProblem) put(WITNESSES, "FAIL", policyProblem);
    else if (policy?.quorum) {
      put(WITNESSES, "FAIL", `no proof in this document: 0 of the ${policy.quorum} cosignatures required`);
    }
    return result();
  }

  // 1. the package parses and agrees with the document's own origin, leaf_index and tree_size
  let parsed;
  try {
    if (!isPlainObject(raw)) throw new CheckError("transparency is not an object");
    const unknown = Object.keys(raw).filter((k) => !TRANSPARENCY_MEMBERS.includes(k));
    if (unknown.length) throw new CheckError(`transparency has an unknown member ${unknown[0]}`);
    if (typeof raw.origin !== "string" || typeof raw.proof !== "string") {
      throw new CheckError("transparency needs string origin and proof");
    }
    if (!Number.isSafeInteger(raw.leaf_index) || !Number.isSafeInteger(raw.tree_size)) {
      throw new CheckError("transparency needs integer leaf_index and tree_size");
    }
    const pkg = parseTlogProof(raw.proof);
    const checkpoint = await parseCheckpoint(pkg.note.text, options);
    parsed = { pkg, checkpoint };
  } catch (exc) {
    if (exc instanceof CryptoUnavailable) throw exc;
    put(PROOF, "FAIL", `unusable proof: ${exc.message}`);
    for (const name of TRANSPARENCY_CHECKS.slice(1)) put(name, "SKIPPED", "not checked: the proof package is unusable");
    return result();
  }
  const { pkg, checkpoint } = parsed;
  const receipt = digestBytes(digest);
  const said = [raw.origin, BigInt(raw.leaf_index), BigInt(raw.tree_size)];
  const proved = [checkpoint.origin, pkg.index, checkpoint.size];
  if (said.some((v, i) => v !== proved[i])) {
    const show = (t) => `(${JSON.stringify(t[0])}, ${t[1]}, ${t[2]})`;
    put(PROOF, "FAIL", `the document says (origin, leaf, size) ${show(said)}, its proof ${show(proved)}`);
  } else if (pkg.extra !== null && !equalBytes(pkg.extra, receipt)) {
    put(PROOF, "FAIL", `the proof is for receipt sha256:${toHex(pkg.extra).slice(0, 16)}.., not this one`);
  } else {
    put(PROOF, "PASS", `leaf ${pkg.index} of tree size ${checkpoint.size}, ${pkg.hashes.length} proof hashes`);
  }

  // 2. the checkpoint is of the org's log
  const orgId = payload.org_id;
  const prefix = keySet.originPrefix;
  if (typeof orgId !== "string") {
    put(ORIGIN, "FAIL", "the payload names no org_id");
  } else if (prefix) {
    const expected = `${prefix.replace(/\/+$/, "")}/${orgId}`;
    if (checkpoint.origin === expected) put(ORIGIN, "PASS", `${expected}, the log of org ${orgId} under ${source}`);
    else put(ORIGIN, "FAIL", `the checkpoint is of ${JSON.stringify(checkpoint.origin)}, not the org's log ${JSON.stringify(expected)}`);
  } else if (checkpoint.origin.endsWith("/" + orgId)) {
    put(ORIGIN, "PASS", `${checkpoint.origin} names org ${orgId} (${source} gives no origin prefix)`);
  } else {
    put(ORIGIN, "FAIL", `the checkpoint is of ${JSON.stringify(checkpoint.origin)}, not a log of org ${orgId}`);
  }

  // 3. the leaf is the receipt's
  const seq = payload.seq;
  if (!Number.isSafeInteger(seq)) put(LEAF, "FAIL", "the payload has no integer seq");
  else if (pkg.index === BigInt(seq) - 1n) put(LEAF, "PASS", `leaf ${pkg.index} is the receipt at seq ${seq}`);
  else put(LEAF, "FAIL", `the proof is for leaf ${pkg.index}, but seq ${seq} is leaf ${seq - 1}`);

  // 4. the inclusion proof leads from the receipt's leaf to the checkpoint's root
  try {
    const root = await rootFromInclusionProof(await leafHash(receipt, options), pkg.index, checkpoint.size, pkg.hashes, options);
    if (equalBytes(root, checkpoint.rootHash)) {
      put(INCLUSION, "PASS", `leaf ${pkg.index} leads to root ${toHex(root).slice(0, 16)}.. of tree size ${checkpoint.size}`);
    } else {
      put(
        INCLUSION,
        "FAIL",
        `inclusion proof for leaf ${pkg.index} of ${checkpoint.size} leads to root ${toHex(root).slice(0, 16)}.., ` +
          `not ${toHex(checkpoint.rootHash).slice(0, 16)}..`,
      );
    }
  } catch (exc) {
    if (exc instanceof CryptoUnavailable) throw exc;
    put(INCLUSION, "FAIL", exc.message);
  }

  // 5. a key of the key set signed the checkpoint as its origin, and every such signature verifies
  const origin = checkpoint.origin;
  const note = pkg.note;
  const text = utf8.encode(note.text);
  let log = null;
  if (keySet.problem) {
    put(LOG_KEY, "FAIL", keySet.problem);
  } else if (!isValidKeyName(origin)) {
    put(LOG_KEY, "FAIL", `no log key for ${JSON.stringify(origin.slice(0, 80))}: not a valid key name`);
  } else {
    const ids = new Set(note.signatures.filter((s) => s.name === origin).map((s) => s.keyId));
    for (const key of keySet.keys) {
      const id = await noteKeyId(origin, ED25519, key.publicKey, options);
      if (ids.has(id)) {
        log = { key, id };
        break;
      }
    }
    if (log) {
      const status = log.key.status ? ` (${log.key.status})` : "";
      put(LOG_KEY, "PASS", `key ${log.key.kid}${status} of ${source}, as ${origin}`);
    } else {
      put(LOG_KEY, "FAIL", `no key of ${source} signed the checkpoint as ${origin}`);
    }
  }
  if (!log) {
    put(LOG_SIGNATURE, "FAIL", "not checked: no known log key signed the checkpoint");
  } else {
    const by = note.signatures.filter((s) => s.name === origin && s.keyId === log.id);
    let good = true;
    for (const s of by) good = good && (await ed25519Verify(log.key.publicKey, s.signature, text, options));
    if (good) put(LOG_SIGNATURE, "PASS", `signed by ${origin}+${keyIdHex(log.id)}`);
    else put(LOG_SIGNATURE, "FAIL", `invalid signature for key ${origin}+${keyIdHex(log.id)}`);
  }

  // 6. the listed witnesses' cosignatures verify, and (with a quorum) enough of them cosigned
  const others = note.signatures.filter((s) => s.name !== origin);
  if (policyProblem) {
    put(WITNESSES, "FAIL", policyProblem);
  } else if (!policy) {
    const why = keySet.problem || "the key set lists no witnesses";
    put(WITNESSES, "SKIPPED", `${why}: ${others.length} cosignature lines not checked`);
  } else {
    put(WITNESSES, ...(await witnessOutcome(policy, others, note.text, options)));
  }
  return result();
}

async function witnessOutcome(policy, others, text, options) {
  const stamps = new Map();
  for (const cosigner of policy.cosigners) {
    for (const s of others.filter((o) => o.name === cosigner.name && o.keyId === cosigner.keyId)) {
      let ok = s.signature.length === 72;
      let timestamp = 0n;
      if (ok) {
        timestamp = new DataView(s.signature.buffer, s.signature.byteOffset).getBigUint64(0);
        ok = timestamp <= MAX_TIMESTAMP;
      }
      if (ok) {
        const message = concat(utf8.encode(`cosignature/v1\ntime ${timestamp}\n${text}`));
        ok = await ed25519Verify(cosigner.publicKey, s.signature.slice(8), message, options);
      }
      if (!ok) return ["FAIL", `invalid cosignature by ${cosigner.name}+${keyIdHex(cosigner.keyId)}`];
      if (!stamps.has(cosigner.name)) stamps.set(cosigner.name, timestamp);
    }
  }
  const now = options?.now;
  if (now !== undefined && now !== null) {
    for (const [name, t] of stamps) {
      if (t > BigInt(Math.floor(now))) return ["FAIL", `cosignature by ${name} is dated ${when(t)}, in the future`];
    }
  }
  const named = [...stamps].map(([name, t]) => `${name} at ${when(t)}`).join(", ");
  const n = policy.cosigners.length;
  if (policy.quorum !== null) {
    if (stamps.size < policy.quorum) {
      const missing = policy.cosigners.filter((c) => !stamps.has(c.name)).map((c) => c.name);
      return ["FAIL", `${stamps.size} of the ${policy.quorum} cosignatures required; missing: ${missing.join(", ")}`];
    }
    return ["PASS", `${stamps.size} of ${n} (need ${policy.quorum}): ${named}`];
  }
  if (!stamps.size) {
    const lines = others.length ? `${others.length} cosignature lines, none by them` : "the note carries no cosignatures";
    return ["SKIPPED", `none of the ${n} witnesses ${policy.source} lists cosigned this checkpoint (${lines})`];
  }
  return ["PASS", `${stamps.size} of the ${n} witnesses ${policy.source} lists cosigned: ${named}`];
}

/**
 * Verify a receipt document against a key set.
 *
 * @param doc      the parsed body of GET /share/{token} (or /receipts/{hash})
 * @param keys     the parsed /.well-known/defendable-keys.json: {keys: [{kid, public_key, status}],
 *                 origin_prefix?, witnesses?: [{name, vkey}]}
 * @param options  {witnesses?: [{name, vkey}] (pins these instead of the key set's; quorum defaults to all),
 *                 quorum?: k (require k cosignatures), now?: Unix seconds (refuse later cosignatures),
 *                 keySource?: how details name the key set, subtle?: a SubtleCrypto to use}
 * @returns        [{name, outcome: "PASS" | "FAIL" | "SKIPPED", detail}], in a fixed order
 */
export async function verifyReceipt(doc, keys, options = {}) {
  try {
    return await verifyAll(doc, keys, options);
  } catch (exc) {
    if (exc instanceof CryptoUnavailable) return [check("browser", "FAIL", exc.message)];
    return [check("verifier", "FAIL", `the verifier failed: ${exc}`)];
  }
}

async function verifyAll(doc, keys, options) {
  if (!isPlainObject(doc) || !("payload" in doc) || !("receipt_hash" in doc)) {
    return [check("document", "FAIL", "not a receipt document: needs `receipt_hash` and `payload`")];
  }
  const claimed = String(doc.receipt_hash);
  const payload = doc.payload;
  const source = options.keySource || "the published key set";
  let bytes;
  try {
    bytes = canonicalBytes(payload);
  } catch (exc) {
    const rest = [...RECEIPT_CHECKS.slice(1), ...TRANSPARENCY_CHECKS];
    return [
      check(CANONICAL, "FAIL", exc.message),
      ...rest.map((name) => check(name, "SKIPPED", "not checked: the payload has no canonical form")),
    ];
  }
  const checks = [check(CANONICAL, "PASS", "payload canonicalises")];
  const digest = await sha256Digest(bytes, options);
  checks.push(
    digest === claimed
      ? check(HASH, "PASS", `SHA-256 of the canonical payload is ${claimed}`)
      : check(HASH, "FAIL", `payload hashes to ${digest}, document claims ${claimed}`),
  );
  checks.push(schemaCheck(payload));
  try {
    checks.push(await signatureCheck(doc.signature, claimed, options));
  } catch (exc) {
    checks.push(failedCheck(SIGNATURE, exc));
  }
  const keySet = await readKeySet(keys, options);
  checks.push(signingKeyCheck(doc.signature, keySet, source));
  const fields = isPlainObject(payload) ? payload : {};
  checks.push(chainCheck(doc, fields, claimed));
  checks.push(...redactionChecks(payload));
  checks.push(...(await transparencyChecks(doc, fields, digest, keySet, source, options)));
  return checks;
}

/** The verdict over the checks: verified when none failed and at least one passed (verification.py all_passed). */
export function summarize(checks) {
  const count = (outcome) => checks.filter((c) => c.outcome === outcome).length;
  const failed = count("FAIL");
  const passed = count("PASS");
  return {
    verified: failed === 0 && passed > 0,
    passed,
    failed,
    skipped: count("SKIPPED"),
    failures: checks.filter((c) => c.outcome === "FAIL").map((c) => c.name),
  };
}

// Checks an erasured receipt with nothing but Node's built-in crypto: no erasured code, no npm
// package. Usage:
//
//   node verify.mjs RECEIPT.json KEY.jwk
//
// RECEIPT.json is the receipt as the API shows it (grpcurl's output of Status, or
// `erasured ctl get NAME -o json`): a Status response, an Erasure or a Receipt. KEY.jwk is the
// receipt-signing public key as a JSON Web Key (`erasured ctl receipt-keys --format jwk`).
//
// It checks that the receipt's JWS is signed with EdDSA by that key, that its header names the
// key and the receipt type, that the receipt's hash is the SHA-256 of the signed payload, and
// that every field the receipt shows is the one signed (the payload is the receipt's proto3
// JSON without hash, signature and jws), no more and no fewer. Given a Status response or an
// Erasure, it also requires the Erasure's name, accountId and subjectFingerprint to be the
// receipt's: only erasure.receipt is signed, not the Erasure around it. It exits 0 when all
// hold, 1 otherwise.
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";

function fail(msg) {
  console.error(`receipt is NOT valid: ${msg}`);
  process.exit(1);
}

const [receiptFile, keyFile] = process.argv.slice(2);
if (!receiptFile || !keyFile) {
  console.error("usage: node verify.mjs RECEIPT.json KEY.jwk");
  process.exit(2);
}
const doc = JSON.parse(readFileSync(receiptFile, "utf8"));
// The Erasure holding the receipt, in a Status response or alone; none for a receipt alone.
const around = doc.erasure?.receipt ? doc.erasure : doc.receipt ? doc : undefined;
const receipt = around ? around.receipt : doc;
const jwk = JSON.parse(readFileSync(keyFile, "utf8"));
if (!receipt.jws) fail("it carries no JWS (receipts signed before the JWS form verify with `erasured receipt verify`)");

const parts = receipt.jws.split(".");
if (parts.length !== 3) fail("jws is not a JWS in compact serialization");
const [h, p, s] = parts;
const header = JSON.parse(Buffer.from(h, "base64url").toString("utf8"));
if (header.alg !== "EdDSA") fail(`JWS alg is ${JSON.stringify(header.alg)}, not EdDSA`);
if (header.typ !== "erasure-receipt+jws") fail(`JWS typ is ${JSON.stringify(header.typ)}`);
if (header.kid !== jwk.kid) fail(`JWS names key ${header.kid}, the key given is ${jwk.kid}`);

const key = createPublicKey({ key: jwk, format: "jwk" });
if (!verify(null, Buffer.from(`${h}.${p}`), key, Buffer.from(s, "base64url"))) {
  fail("the JWS signature does not verify with this key");
}

const payloadBytes = Buffer.from(p, "base64url");
const hash = createHash("sha256").update(payloadBytes).digest("hex");
if (hash !== receipt.hash) fail(`hash ${receipt.hash} is not the SHA-256 of the signed payload (${hash})`);

const payload = JSON.parse(payloadBytes.toString("utf8"));
const shown = { ...receipt };
for (const k of ["hash", "signature", "jws"]) delete shown[k];
const names = new Set([...Object.keys(shown), ...Object.keys(payload)]);
const differ = [...names].filter((k) => !isDeepStrictEqual(shown[k], payload[k])).sort();
if (differ.length > 0) fail(`the fields shown differ from the signed ones: ${differ.join(", ")}`);

// The Erasure is not signed, yet a reader takes its name, account and subject as the receipt's.
let note = "";
if (around) {
  const pairs = [["name", "erasure"], ["accountId", "accountId"], ["subjectFingerprint", "subjectFingerprint"]];
  const wrong = pairs.filter(([e, r]) => around[e] !== payload[r]).map(([e]) => e);
  if (wrong.length > 0) fail(`the Erasure around the receipt differs from it in ${wrong.join(", ")}; only erasure.receipt is signed`);
  note = "; the Erasure around it names the same erasure, account and subject fingerprint, but only erasure.receipt is signed";
}

console.log(`receipt for ${payload.erasure} is valid: EdDSA signature by ${header.kid}, hash ${hash}, previous ${payload.previousHash ?? "(first in chain)"}${note}`);

#!/bin/sh
# Checks an erasured receipt's JWS signature and hash with openssl (3.0 or later) and POSIX
# tools alone. Usage:
#
#   sh verify-openssl.sh RECEIPT KEY.pem
#
# RECEIPT is the receipt as the API shows it (grpcurl's output of Status, or
# `erasured ctl get NAME -o json`, one field per line), or a file holding the JWS alone. KEY.pem
# is the receipt-signing public key (`erasured ctl receipt-keys --format pem`). It prints the
# signed payload, the receipt's content, for the reader to compare with the fields shown
# (node verify.mjs compares them itself). It checks that the JWS header is exactly
# {"alg":"EdDSA","kid":KEY_ID,"typ":"erasure-receipt+jws"}, KEY_ID being the receipt's keyId (for
# a JWS alone, the signed payload's), that the signature verifies with KEY.pem, and, given the
# receipt's JSON, that its hash is the SHA-256 of the signed payload. Exits 0 when all hold.
set -eu
[ $# -eq 2 ] || { echo "usage: sh verify-openssl.sh RECEIPT KEY.pem" >&2; exit 2; }
receipt=$1 key=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" "$receipt" | head -n 1; }

json=no
if [ "$(head -c 1 "$receipt")" = "{" ]; then
  json=yes
  jws=$(field jws)
  hash=$(field hash)
  kid=$(field keyId)
  [ -n "$hash" ] || { echo "receipt is NOT valid: it shows no hash" >&2; exit 1; }
  [ -n "$kid" ] || { echo "receipt is NOT valid: it shows no keyId" >&2; exit 1; }
else
  jws=$(tr -d ' \n' <"$receipt")
fi
[ -n "$jws" ] || { echo "receipt is NOT valid: it carries no JWS" >&2; exit 1; }

# base64url (RFC 4648 section 5, unpadded) to bytes.
b64url_decode() {
  s=$(printf '%s' "$1" | tr '_-' '/+')
  case $(( ${#s} % 4 )) in 2) s="$s==" ;; 3) s="$s=" ;; esac
  printf '%s' "$s" | openssl base64 -d -A
}

h=${jws%%.*}
rest=${jws#*.}
p=${rest%%.*}
s=${rest#*.}
printf '%s.%s' "$h" "$p" >"$tmp/signing-input"
b64url_decode "$s" >"$tmp/sig"
b64url_decode "$p" >"$tmp/payload.json"
header=$(b64url_decode "$h")
echo "header: $header"
if [ "$json" = no ]; then # a JWS alone: the key id the signed payload names
  kid=$(sed -n 's/.*"keyId":"\([^"]*\)".*/\1/p' "$tmp/payload.json")
fi
want='{"alg":"EdDSA","kid":"'$kid'","typ":"erasure-receipt+jws"}'
[ "$header" = "$want" ] ||
  { echo "receipt is NOT valid: the JWS header is not $want" >&2; exit 1; }

openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in "$tmp/signing-input" -sigfile "$tmp/sig" >/dev/null ||
  { echo "receipt is NOT valid: the JWS signature does not verify with $key" >&2; exit 1; }

sum=$(openssl dgst -sha256 -r "$tmp/payload.json" | cut -d' ' -f1)
if [ "$json" = yes ] && [ "$sum" != "$hash" ]; then
  echo "receipt is NOT valid: hash $hash is not the SHA-256 of the signed payload ($sum)" >&2
  exit 1
fi
echo "signed payload:"
cat "$tmp/payload.json"
echo
if [ "$json" = yes ]; then
  echo "signature valid (EdDSA, $key, header for key $kid); the receipt's hash is the SHA-256 of the payload: $sum"
  echo "not checked here: that the fields shown are the payload's (node verify.mjs checks them)"
else
  echo "signature valid (EdDSA, $key, header for key $kid); SHA-256 of the payload: $sum (no receipt hash given to compare)"
fi

package service

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/erasured/erasured/service/internal/jcs"
)

// A receipt is signed as a JWS (RFC 7515) with EdDSA over Ed25519 (RFC 8037), so that an auditor
// checks it with any JOSE library, openssl or node, without this code:
//
//   - The payload is the receipt's content in the proto3 JSON form the API shows (grpcurl's
//     output): field names in lowerCamelCase, enums by name, timestamps in RFC 3339 (UTC, with 0,
//     3, 6 or 9 fractional digits), int64 values as strings, fields at their zero value left
//     out; hash, signature and jws themselves left out. It is written in RFC 8785 canonical
//     JSON, so its bytes follow from the fields alone.
//   - The protected header is {"alg":"EdDSA","kid":KEY_ID,"typ":"erasure-receipt+jws"}, in
//     canonical JSON too.
//   - hash is the SHA-256 of the payload's bytes; the payload holds previousHash, so the chain
//     is under the signature. signature holds the JWS's signature (standard base64).
//
// Since the header and the payload follow from the receipt's fields, the JWS is not stored: it
// is rebuilt from them and the signature (ReceiptJWS), and a receipt shown with fields that
// differ from what was signed fails verification. Receipts signed before the JWS form keep
// their hash and signature over the earlier content (signedContent) and verify as they did.

// receiptJWSType is the typ of a receipt JWS's header: it tells a receipt from any other JWS
// signed by the same key.
const receiptJWSType = "erasure-receipt+jws"

// API names of the enums a receipt holds, by number; the numbering matches erasure.v1.
var (
	targetKindNames   = []string{"TARGET_KIND_UNSPECIFIED", "TARGET_KIND_ENGAGEMENT", "TARGET_KIND_CONVERSATION", "TARGET_KIND_CONSUMER"}
	targetStatusNames = []string{"TARGET_STATUS_UNSPECIFIED", "TARGET_STATUS_FOUND", "TARGET_STATUS_DEFERRED_OPEN", "TARGET_STATUS_QUEUED",
		"TARGET_STATUS_SUBMITTED", "TARGET_STATUS_DONE", "TARGET_STATUS_VERIFIED", "TARGET_STATUS_NOT_FOUND"}
	channelNames = []string{"CHANNEL_UNSPECIFIED", "CHANNEL_CHAT", "CHANNEL_MESSAGING"}
)

// enumName is an enum value as proto3 JSON writes it: its name, or its number when it has none.
func enumName(names []string, v int32) any {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return v
}

// protoTime is t as proto3 JSON writes a Timestamp.
func protoTime(t time.Time) string {
	s := t.UTC().Format("2006-01-02T15:04:05.000000000")
	s = strings.TrimSuffix(s, "000")
	s = strings.TrimSuffix(s, "000")
	s = strings.TrimSuffix(s, ".000")
	return s + "Z"
}

// ReceiptPayload is the JWS payload of r, what its signature covers: its content as proto3
// JSON, in canonical JSON.
func ReceiptPayload(r Receipt) ([]byte, error) {
	m := map[string]any{}
	str := func(name, v string) {
		if v != "" {
			m[name] = v
		}
	}
	num := func(name string, v int32) {
		if v != 0 {
			m[name] = v
		}
	}
	str("erasure", r.Erasure)
	str("accountId", r.AccountID)
	str("subjectFingerprint", r.SubjectFingerprint)
	if len(r.Counts) > 0 {
		counts := make([]map[string]any, 0, len(r.Counts))
		for _, c := range r.Counts {
			cm := map[string]any{}
			if c.Kind != 0 {
				cm["kind"] = enumName(targetKindNames, int32(c.Kind))
			}
			if c.Status != 0 {
				cm["status"] = enumName(targetStatusNames, int32(c.Status))
			}
			if c.Count != 0 {
				cm["count"] = c.Count
			}
			counts = append(counts, cm)
		}
		m["counts"] = counts
	}
	if len(r.LPRequestIDs) > 0 {
		ids := make([]string, 0, len(r.LPRequestIDs))
		for _, id := range r.LPRequestIDs {
			ids = append(ids, strconv.FormatInt(id, 10))
		}
		m["livepersonRequestIds"] = ids
	}
	if !r.ReceivedTime.IsZero() {
		m["receivedTime"] = protoTime(r.ReceivedTime)
	}
	if !r.CompleteTime.IsZero() {
		m["completeTime"] = protoTime(r.CompleteTime)
	}
	str("verificationSummary", r.VerificationSummary)
	str("previousHash", r.PreviousHash)
	str("keyId", r.KeyID)
	if len(r.AliasFingerprints) > 0 {
		m["aliasFingerprints"] = r.AliasFingerprints
	}
	if len(r.UnsearchedChannels) > 0 {
		chs := make([]any, 0, len(r.UnsearchedChannels))
		for _, c := range r.UnsearchedChannels {
			chs = append(chs, enumName(channelNames, int32(c)))
		}
		m["unsearchedChannels"] = chs
	}
	num("unverifiableCount", r.UnverifiableCount)
	num("notFoundCount", r.NotFoundCount)
	return canonical(m)
}

func canonical(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jcs.Transform(raw)
}

// receiptHeader is the JWS protected header of a receipt signed by key kid.
func receiptHeader(kid string) ([]byte, error) {
	return canonical(map[string]string{"alg": string(jose.EdDSA), "kid": kid, "typ": receiptJWSType})
}

var b64url = base64.RawURLEncoding

// hashOf is a receipt's hash of content: SHA-256, in hex.
func hashOf(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])
}

// jwsForm reports whether r was signed as a JWS: its hash is that of its JWS payload (a receipt
// signed before has the hash of the earlier content), and it returns the payload.
func jwsForm(r Receipt) (payload []byte, ok bool, err error) {
	payload, err = ReceiptPayload(r)
	if err != nil {
		return nil, false, err
	}
	return payload, hashOf(payload) == r.Hash, nil
}

// ReceiptJWS is r's JWS in compact serialization, rebuilt from its fields and its signature;
// empty for a receipt signed before the JWS form, or one whose fields are not what was signed.
func ReceiptJWS(r Receipt) string {
	payload, ok, err := jwsForm(r)
	if err != nil || !ok {
		return ""
	}
	s, err := compactJWS(r, payload)
	if err != nil {
		return ""
	}
	return s
}

func compactJWS(r Receipt, payload []byte) (string, error) {
	header, err := receiptHeader(r.KeyID)
	if err != nil {
		return "", err
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil {
		return "", fmt.Errorf("receipt signature is not base64: %w", err)
	}
	return b64url.EncodeToString(header) + "." + b64url.EncodeToString(payload) + "." + b64url.EncodeToString(sig), nil
}

// signReceipt sets rc's hash and signature: rc is signed as a JWS by key, named rc.KeyID.
func signReceipt(rc *Receipt, key ed25519.PrivateKey) error {
	payload, err := ReceiptPayload(*rc)
	if err != nil {
		return err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key},
		(&jose.SignerOptions{}).WithType(receiptJWSType).WithHeader("kid", rc.KeyID))
	if err != nil {
		return err
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return err
	}
	jws, err := obj.CompactSerialize()
	if err != nil {
		return err
	}
	parts := strings.Split(jws, ".")
	sig, err := b64url.DecodeString(parts[len(parts)-1])
	if err != nil {
		return err
	}
	rc.Hash = hashOf(payload)
	rc.Signature = base64.StdEncoding.EncodeToString(sig)
	// The stored receipt keeps the signature alone: what was signed must be what its fields
	// rebuild, byte for byte, or no one could check it later.
	if rebuilt, err := compactJWS(*rc, payload); err != nil || rebuilt != jws {
		return errors.New("receipt: the JWS signed is not the canonical one its fields rebuild")
	}
	return nil
}

// openReceiptJWS checks jws as a receipt's envelope signed by pub, and returns its payload and
// its header's kid. Only EdDSA is accepted: a header naming "none", an HMAC or any other
// algorithm is refused before any signature is looked at.
func openReceiptJWS(jws string, pub ed25519.PublicKey) (payload []byte, kid string, err error) {
	obj, err := jose.ParseSignedCompact(jws, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return nil, "", fmt.Errorf("receipt JWS: %w", err)
	}
	h := obj.Signatures[0].Protected
	if want := ReceiptKeyID(pub); h.KeyID != want {
		return nil, "", fmt.Errorf("receipt JWS names key %q, not the key given (%s)", h.KeyID, want)
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != receiptJWSType {
		return nil, "", fmt.Errorf("receipt JWS has typ %q, not %q", typ, receiptJWSType)
	}
	payload, err = obj.Verify(pub)
	if err != nil {
		return nil, "", errors.New("receipt JWS signature is not valid for this public key")
	}
	return payload, h.KeyID, nil
}

// VerifyReceiptJWS checks jws, a receipt's envelope as the API hands it out (Receipt.jws), against
// pub and the receipt's fields r: a valid EdDSA signature by pub's key, a payload that is r's
// content exactly, and r's hash and signature those of this JWS. A receipt whose fields differ
// from what was signed fails, whichever side was changed.
func VerifyReceiptJWS(r Receipt, jws string, pub ed25519.PublicKey) error {
	payload, kid, err := openReceiptJWS(jws, pub)
	if err != nil {
		return err
	}
	want, err := ReceiptPayload(r)
	if err != nil {
		return err
	}
	if !bytes.Equal(payload, want) {
		return fmt.Errorf("the receipt's fields differ from its signed payload: %s", differingFields(payload, want))
	}
	if kid != r.KeyID {
		return fmt.Errorf("receipt names key %q, its JWS %q", r.KeyID, kid)
	}
	if hashOf(payload) != r.Hash {
		return errors.New("receipt hash is not the SHA-256 of its signed payload")
	}
	if rebuilt, err := compactJWS(r, payload); err != nil || rebuilt != jws {
		return errors.New("receipt signature is not its JWS's signature")
	}
	return nil
}

// differingFields names the top-level fields in which two payloads differ, for an auditor to
// know where to look. Receipts hold no personal data, but the names are enough.
func differingFields(got, want []byte) string {
	var g, w map[string]json.RawMessage
	if json.Unmarshal(got, &g) != nil || json.Unmarshal(want, &w) != nil {
		return "the signed payload is not a JSON object"
	}
	var names []string
	for k, v := range g {
		if wv, ok := w[k]; !ok || !bytes.Equal(v, wv) {
			names = append(names, k)
		}
	}
	for k := range w {
		if _, ok := g[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

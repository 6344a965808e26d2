package service

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testReceipt is a receipt with every field set, signed as complete signs one.
func testReceipt(t *testing.T, keys *Keyring) Receipt {
	t.Helper()
	at := time.Date(2026, 3, 10, 12, 0, 0, 123_000_000, time.FixedZone("CET", 3600))
	rc := Receipt{
		Erasure:             "erasures/01a23bf4-476b-7291-b566-11dbe7ea3b3a",
		AccountID:           "1234",
		SubjectFingerprint:  "bb1b47",
		Counts:              []TargetCount{{Kind: KindEngagement, Status: TargetVerified, Count: 2}, {Kind: KindConsumer, Status: TargetNotFound, Count: 1}},
		LPRequestIDs:        []int64{1001, 1 << 60},
		ReceivedTime:        at,
		CompleteTime:        at.Add(5*24*time.Hour + 456*time.Microsecond),
		VerificationSummary: `2 of 2 re-read records verified erased; "quoted" <and> & é`,
		PreviousHash:        "821119c3bb8c4955aa3a1dcaa9220787ca6718ca801663dd350302244dd8acae",
		KeyID:               keys.SigningKeyID(),
		AliasFingerprints:   []string{"a1", "a2"},
		UnsearchedChannels:  []Channel{ChannelMessaging},
		UnverifiableCount:   1,
		NotFoundCount:       1,
	}
	if err := signReceipt(&rc, keys.signing); err != nil {
		t.Fatal(err)
	}
	return rc
}

func testKeyring(t *testing.T, master string) *Keyring {
	t.Helper()
	k, err := NewKeyring("test", []byte(master))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestReceiptPayloadIsTheAPIsJSON pins the payload's form: what an auditor reads after decoding
// the JWS. It is the receipt as the API shows it, in canonical JSON.
func TestReceiptPayloadIsTheAPIsJSON(t *testing.T) {
	keys := testKeyring(t, string(testKey))
	rc := testReceipt(t, keys)
	jws := ReceiptJWS(rc)
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("ReceiptJWS = %q, want a compact JWS", jws)
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if want := `{"alg":"EdDSA","kid":"` + keys.SigningKeyID() + `","typ":"erasure-receipt+jws"}`; string(header) != want {
		t.Errorf("header = %s, want %s", header, want)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	want := `{"accountId":"1234","aliasFingerprints":["a1","a2"],"completeTime":"2026-03-15T11:00:00.123456Z",` +
		`"counts":[{"count":2,"kind":"TARGET_KIND_ENGAGEMENT","status":"TARGET_STATUS_VERIFIED"},{"count":1,"kind":"TARGET_KIND_CONSUMER","status":"TARGET_STATUS_NOT_FOUND"}],` +
		`"erasure":"erasures/01a23bf4-476b-7291-b566-11dbe7ea3b3a","keyId":"` + keys.SigningKeyID() + `",` +
		`"livepersonRequestIds":["1001","1152921504606846976"],"notFoundCount":1,` +
		`"previousHash":"821119c3bb8c4955aa3a1dcaa9220787ca6718ca801663dd350302244dd8acae",` +
		`"receivedTime":"2026-03-10T11:00:00.123Z","subjectFingerprint":"bb1b47","unsearchedChannels":["CHANNEL_MESSAGING"],` +
		`"unverifiableCount":1,"verificationSummary":"2 of 2 re-read records verified erased; \"quoted\" <and> & é"}`
	if string(payload) != want {
		t.Errorf("payload =\n%s\nwant\n%s", payload, want)
	}
	if sum := sha256.Sum256(payload); rc.Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("hash %s is not the SHA-256 of the payload", rc.Hash)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if !ed25519.Verify(keys.PublicKey(), []byte(parts[0]+"."+parts[1]), sig) {
		t.Error("the JWS's signature does not verify over its signing input with plain Ed25519")
	}
	if base64.StdEncoding.EncodeToString(sig) != rc.Signature {
		t.Error("the receipt's signature field is not the JWS's signature")
	}
}

// signJWS signs payload as a JWS with the given header fields, the way someone forging a
// receipt would: any algorithm, any kid.
func signJWS(t *testing.T, alg jose.SignatureAlgorithm, key any, kid, typ string, payload []byte) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithHeader("kid", kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyReceiptJWS(t *testing.T) {
	keys := testKeyring(t, string(testKey))
	other := testKeyring(t, "fedcba9876543210fedcba9876543210")
	rc := testReceipt(t, keys)
	jws := ReceiptJWS(rc)
	payload, _ := ReceiptPayload(rc)
	parts := strings.Split(jws, ".")
	b64 := base64.RawURLEncoding.EncodeToString

	if err := VerifyReceipt(rc, keys.PublicKey()); err != nil {
		t.Errorf("VerifyReceipt = %v, want nil", err)
	}
	if err := VerifyReceiptJWS(rc, jws, keys.PublicKey()); err != nil {
		t.Errorf("VerifyReceiptJWS = %v, want nil", err)
	}

	tamperedPayload := strings.Replace(string(payload), `"accountId":"1234"`, `"accountId":"9999"`, 1)
	changed := rc
	changed.AccountID = "9999"
	chain := rc
	chain.PreviousHash = strings.Repeat("0", 64)
	hsKey := []byte(keys.PublicKey()) // the classic attack: the public key as an HMAC secret
	hs := signJWS(t, jose.HS256, hsKey, rc.KeyID, receiptJWSType, payload)
	noneHeader := b64([]byte(`{"alg":"none","kid":"` + rc.KeyID + `","typ":"erasure-receipt+jws"}`))
	hsHeader := b64([]byte(`{"alg":"HS256","kid":"` + rc.KeyID + `","typ":"erasure-receipt+jws"}`))
	mac := hmac.New(sha256.New, hsKey)
	mac.Write([]byte(hsHeader + "." + parts[1]))
	otherSig := base64.StdEncoding.EncodeToString(ed25519.Sign(keys.signing, []byte("something else")))
	wrongSigField := rc
	wrongSigField.Signature = otherSig

	tests := []struct {
		name string
		rc   Receipt
		jws  string
		pub  ed25519.PublicKey
		want string // in the error
	}{
		{"payload changed after signing", rc, parts[0] + "." + b64([]byte(tamperedPayload)) + "." + parts[2], keys.PublicKey(), "signature is not valid"},
		{"a visible field changed", changed, jws, keys.PublicKey(), "fields differ from its signed payload: accountId"},
		{"the chain link changed", chain, jws, keys.PublicKey(), "fields differ from its signed payload: previousHash"},
		{"the signature field is another", wrongSigField, jws, keys.PublicKey(), "not its JWS's signature"},
		{"another key", rc, jws, other.PublicKey(), "names key"},
		{"signed by another key under this key's kid", rc, signJWS(t, jose.EdDSA, other.signing, rc.KeyID, receiptJWSType, payload), keys.PublicKey(), "signature is not valid"},
		{"another kid", rc, signJWS(t, jose.EdDSA, keys.signing, "rk-000000000000", receiptJWSType, payload), keys.PublicKey(), "names key"},
		{"no typ", rc, signJWS(t, jose.EdDSA, keys.signing, rc.KeyID, "", payload), keys.PublicKey(), "typ"},
		{"alg none", rc, noneHeader + "." + parts[1] + ".", keys.PublicKey(), "receipt JWS"},
		{"alg HS256 by go-jose", rc, hs, keys.PublicKey(), "receipt JWS"},
		{"alg HS256 by hand", rc, hsHeader + "." + parts[1] + "." + b64(mac.Sum(nil)), keys.PublicKey(), "receipt JWS"},
		{"not a JWS", rc, "eyJhbGciOiJFZERTQSJ9", keys.PublicKey(), "receipt JWS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyReceiptJWS(tt.rc, tt.jws, tt.pub)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("VerifyReceiptJWS = %v, want an error with %q", err, tt.want)
			}
		})
	}

	// The receipt alone, as stored: each change breaks it too.
	for name, r := range map[string]Receipt{"field": changed, "chain": chain, "signature": wrongSigField} {
		if err := VerifyReceipt(r, keys.PublicKey()); err == nil {
			t.Errorf("VerifyReceipt with a changed %s = nil, want an error", name)
		}
	}
	if err := VerifyReceipt(rc, other.PublicKey()); err == nil || !strings.Contains(err.Error(), "names key") {
		t.Errorf("VerifyReceipt with another key = %v, want refused by kid", err)
	}
}

// TestReceiptSignedBeforeJWSVerifies: a receipt the earlier signer made (a fixture written by
// it) keeps verifying, has no JWS, and still fails when changed.
func TestReceiptSignedBeforeJWSVerifies(t *testing.T) {
	raw, err := os.ReadFile("testdata/receipt-before-jws.json")
	if err != nil {
		t.Fatal(err)
	}
	var rc Receipt
	if err := json.Unmarshal(raw, &rc); err != nil {
		t.Fatal(err)
	}
	keys := testKeyring(t, string(testKey))
	if got := base64.StdEncoding.EncodeToString(keys.PublicKey()); got != "wIO1zPExq76j0lOUYG3bvCEtG/cYeWIeuTt6vLTOAqw=" {
		t.Fatalf("test key's public key = %s, not the fixture's", got)
	}
	if err := VerifyReceipt(rc, keys.PublicKey()); err != nil {
		t.Errorf("VerifyReceipt(receipt signed before the JWS) = %v, want nil", err)
	}
	if jws := ReceiptJWS(rc); jws != "" {
		t.Errorf("ReceiptJWS of a receipt signed before the JWS = %q, want empty", jws)
	}
	rc.NotFoundCount = 1
	if VerifyReceipt(rc, keys.PublicKey()) == nil {
		t.Error("a changed receipt signed before the JWS verified")
	}
}

func TestReceiptKeyForms(t *testing.T) {
	keys := testKeyring(t, string(testKey))
	if got := ReceiptKeyID(keys.PublicKey()); got != keys.SigningKeyID() {
		t.Errorf("ReceiptKeyID = %s, the keyring names its key %s", got, keys.SigningKeyID())
	}
	k := ReceiptKey{ID: keys.SigningKeyID(), PublicKey: keys.PublicKey()}
	jwk, err := k.JWK()
	if err != nil {
		t.Fatal(err)
	}
	x := base64.RawURLEncoding.EncodeToString(keys.PublicKey())
	if want := `{"alg":"EdDSA","crv":"Ed25519","kid":"` + k.ID + `","kty":"OKP","use":"sig","x":"` + x + `"}`; jwk != want {
		t.Errorf("JWK = %s, want %s", jwk, want)
	}
	p, err := k.PEM()
	if err != nil {
		t.Fatal(err)
	}
	// The SubjectPublicKeyInfo of an Ed25519 key is a fixed 12-byte prefix and the key.
	der, _ := base64.StdEncoding.DecodeString(strings.Join(strings.Split(strings.TrimSpace(p), "\n")[1:2], ""))
	if !strings.HasPrefix(p, "-----BEGIN PUBLIC KEY-----\n") || len(der) != 44 || string(der[12:]) != string(keys.PublicKey()) {
		t.Errorf("PEM = %q, want the key's SubjectPublicKeyInfo", p)
	}
}

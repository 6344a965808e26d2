package service

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/erasured/erasured/service/internal/jcs"
)

// ReceiptKey is a public key that verifies receipts, named as receipts name it.
type ReceiptKey struct {
	ID        string
	PublicKey ed25519.PublicKey
}

// ReceiptKeyID names a receipt-signing key: a hash prefix of its public key, so that anyone
// holding the key can tell which receipts it verifies.
func ReceiptKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "rk-" + hex.EncodeToString(sum[:6])
}

// JWK is k as a JSON Web Key (RFC 8037: kty OKP, crv Ed25519), with its kid, alg EdDSA and use
// sig, in canonical JSON: what JOSE libraries and node's crypto.createPublicKey read.
func (k ReceiptKey) JWK() (string, error) {
	raw, err := jose.JSONWebKey{Key: k.PublicKey, KeyID: k.ID, Algorithm: string(jose.EdDSA), Use: "sig"}.MarshalJSON()
	if err != nil {
		return "", err
	}
	b, err := jcs.Transform(raw)
	return string(b), err
}

// PEM is k as a PEM "PUBLIC KEY" block (SubjectPublicKeyInfo): what openssl reads.
func (k ReceiptKey) PEM() (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k.PublicKey)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// ReceiptKeys are the public keys that verify this store's receipts, the one signing new
// receipts first. There is one: the signing key is derived from the key directory's root
// secret, which is made once and kept through master key rotations, and a database written
// before the key directory existed got a root secret equal to its master key, from which its
// earlier receipts were signed.
func (s *Service) ReceiptKeys() []ReceiptKey {
	return []ReceiptKey{{ID: s.keys.SigningKeyID(), PublicKey: s.keys.PublicKey()}}
}

// ReadReceiptKey is the receipt-signing key of the server whose master key (named masterID)
// and key directory these are, found as the server finds it (the root secret in dir, or the
// master key itself where dir holds none yet: what the server's first start makes), without
// writing anything: not a key directory, not a period key.
func ReadReceiptKey(masterID string, master []byte, dir string) (ReceiptKey, error) {
	return readReceiptKey(masterID, master, &keyDir{path: dir})
}

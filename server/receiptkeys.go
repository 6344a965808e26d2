package server

import (
	"context"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// GetReceiptKeys hands out the public keys that verify receipts, the one signing new receipts
// first, each in the forms standard tools read: raw, as a JWK (JOSE libraries, node) and as PEM
// (openssl). They are public: any viewer may have them.
func (h *handler) GetReceiptKeys(context.Context, *erasurev1.GetReceiptKeysRequest) (*erasurev1.GetReceiptKeysResponse, error) {
	out := &erasurev1.GetReceiptKeysResponse{}
	for _, k := range h.svc.ReceiptKeys() {
		jwk, err := k.JWK()
		if err != nil {
			return nil, toStatus(err)
		}
		pem, err := k.PEM()
		if err != nil {
			return nil, toStatus(err)
		}
		out.Keys = append(out.Keys, &erasurev1.ReceiptKey{KeyId: k.ID, PublicKey: k.PublicKey, Jwk: jwk, Pem: pem})
	}
	return out, nil
}

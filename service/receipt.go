package service

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/erasured/erasured/store"
)

// Receipts are signed with an Ed25519 key derived from the master key and chained: each holds
// the hash of the one before, so a missing or altered receipt breaks the chain.

var receiptHeadKey = []byte("receipts/head")

type receiptHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// signedContent is the canonical byte form of a receipt that the hash and signature cover:
// the receipt's JSON with Hash and Signature empty.
func signedContent(r Receipt) ([]byte, error) {
	r.Hash, r.Signature = "", ""
	r.ReceivedTime = r.ReceivedTime.UTC()
	r.CompleteTime = r.CompleteTime.UTC()
	return json.Marshal(r)
}

// complete attaches a signed receipt to r and appends it to the chain, in tx.
func (s *Service) complete(tx *store.Tx, r *record, ts []Target, now time.Time) error {
	var head receiptHead
	if v := tx.Get(store.Ledger, receiptHeadKey); v != nil {
		if err := json.Unmarshal(v, &head); err != nil {
			return err
		}
	}
	verified := 0
	for _, t := range ts {
		if t.Status == TargetVerified {
			verified++
		}
	}
	summary := fmt.Sprintf("%d of %d records verified erased (masked or gone)", verified, len(ts))
	if len(ts) == 0 {
		summary = "nothing found: no LivePerson record carries the subject's identifier"
	}
	rc := Receipt{
		Erasure:             r.Name(),
		AccountID:           r.AccountID,
		SubjectFingerprint:  r.Fingerprint,
		Counts:              countTargets(ts),
		LPRequestIDs:        lpRequestIDs(r),
		ReceivedTime:        r.ReceivedTime.UTC(),
		CompleteTime:        now.UTC(),
		VerificationSummary: summary,
		PreviousHash:        head.Hash,
		KeyID:               s.keys.SigningKeyID(),
	}
	content, err := signedContent(rc)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(content)
	rc.Hash = hex.EncodeToString(sum[:])
	rc.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(s.keys.signing, content))
	v, err := json.Marshal(rc)
	if err != nil {
		return err
	}
	head = receiptHead{Seq: head.Seq + 1, Hash: rc.Hash}
	if err := tx.Put(store.Receipts, store.U64(head.Seq), v); err != nil {
		return err
	}
	hv, err := json.Marshal(head)
	if err != nil {
		return err
	}
	if err := tx.Put(store.Ledger, receiptHeadKey, hv); err != nil {
		return err
	}
	r.Receipt = &rc
	r.BlockedOn = BlockedNone
	return nil
}

// VerifyReceipt checks a receipt's hash and its signature against pub.
func VerifyReceipt(r Receipt, pub ed25519.PublicKey) error {
	content, err := signedContent(r)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(content)
	if hex.EncodeToString(sum[:]) != r.Hash {
		return errors.New("receipt hash does not match its content")
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil {
		return fmt.Errorf("receipt signature is not base64: %w", err)
	}
	if !ed25519.Verify(pub, content, sig) {
		return errors.New("receipt signature is not valid for this public key")
	}
	return nil
}

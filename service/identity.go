package service

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/store"
)

// A subject may be named by several identifiers of one person: the one Submit names it by (the
// subject) and up to maxAliases more (aliases). Their values are personal data, sealed together
// with the erasure's data key; the record keeps only their kinds and keyed fingerprints.

// maxAliases is how many aliases one erasure may hold.
const maxAliases = 10

// sealedSubject is what a record seals: the subject and its aliases. A record sealed before
// aliases existed holds the subject alone, which decodes the same (with no aliases), and a
// subject without aliases encodes exactly as before.
type sealedSubject struct {
	Subject
	Aliases []Subject `json:"a,omitempty"`
}

// identRef is one identifier of a subject as the record keeps it (see model.IdentRef).
type identRef = model.IdentRef

// identRefs lists every identifier of r, the subject first, then its aliases in the order given.
func identRefs(r *record) []identRef { return model.IdentRefs(&r.Erasure, &r.Private) }

// refsOf fingerprints identifiers of one account.
func (s *Service) refsOf(account string, ids []Subject) []identRef {
	out := make([]identRef, len(ids))
	for i, id := range ids {
		out[i] = identRef{Kind: id.Kind, Fingerprint: s.keys.Fingerprint(account, id), Digits: digitsOnly(id)}
	}
	return out
}

// possiblyUnsearchable reports whether Messaging Interactions may be unable to search v (see
// model.PossiblyUnsearchable).
func possiblyUnsearchable(v string) bool { return model.PossiblyUnsearchable(v) }

// digitsOnly is possiblyUnsearchable for identifiers searched by attribute value.
func digitsOnly(s Subject) bool { return model.DigitsOnly(s) }

// identifierUnsearchable reports whether Messaging Interactions may have missed the person's
// conversations (see model.IdentifierUnsearchable).
func identifierUnsearchable(refs []identRef, channels []Channel, covered bool) bool {
	return model.IdentifierUnsearchable(refs, channels, covered)
}

// searchable reports whether any of refs is an attribute identifier Messaging Interactions can
// search. Until it has been searched it may yet lead to the person's consumer.
func searchable(refs []identRef) bool {
	return slices.ContainsFunc(refs, func(r identRef) bool {
		switch r.Kind {
		case SubjectCustomerID, SubjectEmail, SubjectPhone:
			return !r.Digits
		}
		return false
	})
}

// identities unseals an erasure's subject and aliases (the subject first), for the work that
// needs them: searching LivePerson. They are never returned to callers, logged or put in events.
func (s *Service) identities(id string) ([]Subject, error) {
	var ids []Subject
	err := s.viewRecord(id, func(tx store.Tx, r *record) error {
		sub, err := s.unsealSubject(tx, r)
		ids = append([]Subject{sub.Subject}, sub.Aliases...)
		return err
	})
	return ids, err
}

// unsealSubject opens what r seals, inside a transaction.
func (s *Service) unsealSubject(tx store.Tx, r *record) (sealedSubject, error) {
	key, err := s.dataKeyOf(tx, r)
	if err != nil {
		return sealedSubject{}, err
	}
	plain, err := open(key, r.Sealed, []byte(r.ID))
	if err != nil {
		return sealedSubject{}, fmt.Errorf("unseal subject: %w", err)
	}
	var sub sealedSubject
	if err := json.Unmarshal(plain, &sub); err != nil {
		return sealedSubject{}, err
	}
	return sub, nil
}

// sealSubject seals sub for erasure id with its data key.
func sealSubject(key []byte, id string, sub sealedSubject) ([]byte, error) {
	plain, err := json.Marshal(sub)
	if err != nil {
		return nil, err
	}
	return seal(key, plain, []byte(id))
}

// checkAliases enforces what aliases may be: at most maxAliases identifiers (not explicit
// targets), none empty, none repeating the subject or another alias, and none beside a subject
// that is explicit targets.
func checkAliases(subject Subject, aliases []Subject) error {
	if len(aliases) == 0 {
		return nil
	}
	if len(aliases) > maxAliases {
		return fieldError("aliases", "at most %d aliases", maxAliases)
	}
	if subject.Kind == SubjectTargets {
		return fieldError("aliases", "aliases go with a subject identifier, not with explicit targets")
	}
	seen := []Subject{subject}
	for i, a := range aliases {
		field := fmt.Sprintf("aliases[%d]", i)
		switch {
		case a.Kind == SubjectTargets:
			return fieldError(field, "an alias is an identifier, not explicit targets")
		case a.Kind == SubjectUnspecified || a.Value == "":
			return fieldError(field, "alias identifier is empty")
		case slices.ContainsFunc(seen, func(s Subject) bool { return sameIdentifier(s, a) }):
			return fieldError(field, "alias repeats the subject or another alias")
		}
		seen = append(seen, a)
	}
	return nil
}

// sameIdentifier reports whether a and b name the same identifier, as fingerprints compare them.
func sameIdentifier(a, b Subject) bool {
	return a.Kind == b.Kind && normalizeSubject(a) == normalizeSubject(b)
}

// fieldError is an INVALID_REQUEST error naming the field at fault, as request validation
// reports its field violations.
func fieldError(field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Reason: "INVALID_REQUEST", Message: field + ": " + fmt.Sprintf(format, args...),
		Metadata: map[string]string{"field": field}}
}

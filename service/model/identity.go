package model

import (
	"slices"
	"sort"
	"strings"
	"unicode"
)

// IdentRef is one identifier of a subject as the record keeps it: never the value.
type IdentRef struct {
	Kind        SubjectKind `json:"k"`
	Fingerprint string      `json:"f"`
	// Digits is true when the value looks like one Messaging Interactions may be unable to
	// search (see PossiblyUnsearchable). Whether it matters depends on the channels.
	Digits bool `json:"d,omitempty"`
}

// IdentRefs lists every identifier of the record made of e and p, the subject first, then its
// aliases in the order given.
func IdentRefs(e *Erasure, p *Private) []IdentRef {
	out := make([]IdentRef, 0, 1+len(p.Aliases))
	out = append(out, IdentRef{Kind: e.SubjectKind, Fingerprint: e.Fingerprint, Digits: p.SubjectDigits})
	return append(out, p.Aliases...)
}

// PossiblyUnsearchable reports whether Messaging Interactions may be unable to search v. Its
// documented limitation concerns attribute values "comprised of numbers that contain more than
// three consecutive digits": a value with no letter and a run of four digits or more, such as a
// numeric customer id or a phone number. "jane1984@example.com" and "CUST-12345" are words
// with digits in them, and are searchable. Such a value is searched anyway; finding nothing
// for it proves nothing.
func PossiblyUnsearchable(v string) bool {
	run, long := 0, false
	for _, r := range v {
		switch {
		case unicode.IsLetter(r):
			return false
		case r >= '0' && r <= '9':
			run++
			long = long || run > 3
		default:
			run = 0
		}
	}
	return long
}

// DigitsOnly is PossiblyUnsearchable for identifiers searched by attribute value.
func DigitsOnly(s Subject) bool {
	switch s.Kind {
	case SubjectCustomerID, SubjectEmail, SubjectPhone:
		return PossiblyUnsearchable(s.Value)
	}
	return false
}

// IdentifierUnsearchable reports whether Messaging Interactions may have missed the person's
// conversations: messaging is searched, some identifier may be unsearchable there, and the
// person's consumer is not known — no identifier is a consumer id, and covered is false.
//
// Only the person's consumer makes up for an identifier that may be unsearchable: every
// conversation of that consumer is found by consumer, which needs no attribute search. So a
// searchable identifier (an e-mail alias, say) stands in for a numeric one only when a
// conversation it matched led to the consumer; when it found nothing in messaging, the
// numeric identifier's conversations may still be there, unfound. covered says whether a
// search did find the consumer that way, or, before any search, whether a searchable
// identifier has yet to be searched.
func IdentifierUnsearchable(refs []IdentRef, channels []Channel, covered bool) bool {
	if covered || !slices.Contains(channels, ChannelMessaging) {
		return false
	}
	if slices.ContainsFunc(refs, func(r IdentRef) bool { return r.Kind == SubjectConsumerID }) {
		return false
	}
	return slices.ContainsFunc(refs, func(r IdentRef) bool { return r.Digits })
}

// NormalizeSubject gives the form in which two spellings of one identifier compare equal:
// e-mail addresses ignore case and surrounding space, phone numbers keep only their digits,
// explicit targets are sorted. Customer and consumer ids are exact. Fingerprints are computed
// over it, and the pipeline's search matches LivePerson's attributes with it.
func NormalizeSubject(s Subject) string {
	switch s.Kind {
	case SubjectEmail:
		return strings.ToLower(strings.TrimSpace(s.Value))
	case SubjectPhone:
		return strings.Map(func(r rune) rune {
			if unicode.IsDigit(r) {
				return r
			}
			return -1
		}, s.Value)
	case SubjectTargets:
		c := append([]string(nil), s.ConversationIDs...)
		e := append([]string(nil), s.EngagementIDs...)
		sort.Strings(c)
		sort.Strings(e)
		return "c:" + strings.Join(c, ",") + "\x00e:" + strings.Join(e, ",")
	default:
		return s.Value
	}
}

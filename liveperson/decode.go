package liveperson

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// DeletedMarker is what LivePerson writes over deleted content. Some pages show
// it with two asterisks each side, so match with IsDeleted, not equality.
const DeletedMarker = "*** LP deleted data ***"

// IsDeleted reports whether s is LivePerson's deletion mask.
func IsDeleted(s string) bool { return strings.Contains(s, "LP deleted data") }

// Attributes are the engagement attributes (SDEs) that identify a person: the
// values the pipeline matches exactly against a subject, and the values that
// must show the deletion mask once the record is erased.
type Attributes struct {
	CustomerIDs []string // customerInfo.customerId
	Emails      []string // personalInfo email, direct or in contacts
	Phones      []string // personalInfo phone, direct or in contacts
	Names       []string // personalInfo name and surname
}

// merge returns a's values followed by b's.
func (a Attributes) merge(b Attributes) Attributes {
	cat := func(x, y []string) []string {
		if len(y) == 0 {
			return x
		}
		return append(append([]string(nil), x...), y...)
	}
	return Attributes{CustomerIDs: cat(a.CustomerIDs, b.CustomerIDs), Emails: cat(a.Emails, b.Emails),
		Phones: cat(a.Phones, b.Phones), Names: cat(a.Names, b.Names)}
}

// masked reports whether every attribute value shows the deletion mask.
func (a Attributes) masked() bool {
	for _, group := range [][]string{a.CustomerIDs, a.Emails, a.Phones, a.Names} {
		for _, s := range group {
			if !IsDeleted(s) {
				return false
			}
		}
	}
	return true
}

// sdes is the shared shape of `sdes.events[]` and `unAuthSdes.events[]` in
// both history APIs.
type sdes struct {
	Events []sdeEvent `json:"events"`
}

type sdeEvent struct {
	CustomerInfo *customerInfoJSON `json:"customerInfo"`
	PersonalInfo *personalInfoJSON `json:"personalInfo"`
}

// customerInfoJSON is customerInfo flat (`customerInfo.customerId`) or nested
// (`customerInfo.customerInfo.customerId`); each level is read.
type customerInfoJSON struct {
	CustomerID   flexString        `json:"customerId"`
	CustomerInfo *customerInfoJSON `json:"customerInfo"`
}

// personalInfoJSON is personalInfo in its documented forms: flat, nested
// (`personalInfo.personalInfo`), with email and phone as direct fields or in
// contacts; each level is read.
type personalInfoJSON struct {
	Name         flexString        `json:"name"`
	Surname      flexString        `json:"surname"`
	Email        flexString        `json:"email"`
	Phone        flexString        `json:"phone"`
	Contacts     []contactJSON     `json:"contacts"`
	PersonalInfo *personalInfoJSON `json:"personalInfo"`
}

// contactJSON is a contacts item: `{"personalContact":{"email","phone"}}` or
// the values directly.
type contactJSON struct {
	Email           flexString `json:"email"`
	Phone           flexString `json:"phone"`
	PersonalContact *struct {
		Email flexString `json:"email"`
		Phone flexString `json:"phone"`
	} `json:"personalContact"`
}

func (s *sdes) attributes() Attributes {
	var a Attributes
	if s == nil {
		return a
	}
	add := func(dst *[]string, v flexString) {
		if v != "" {
			*dst = append(*dst, string(v))
		}
	}
	for _, ev := range s.Events {
		for ci := ev.CustomerInfo; ci != nil; ci = ci.CustomerInfo {
			add(&a.CustomerIDs, ci.CustomerID)
		}
		for pi := ev.PersonalInfo; pi != nil; pi = pi.PersonalInfo {
			add(&a.Names, pi.Name)
			add(&a.Names, pi.Surname)
			add(&a.Emails, pi.Email)
			add(&a.Phones, pi.Phone)
			for _, c := range pi.Contacts {
				add(&a.Emails, c.Email)
				add(&a.Phones, c.Phone)
				if pc := c.PersonalContact; pc != nil {
					add(&a.Emails, pc.Email)
					add(&a.Phones, pc.Phone)
				}
			}
		}
	}
	return a
}

// flexString accepts a JSON string, number or bool (LivePerson is loose about
// ids: a customerId or request_id may come either way) and null as "".
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*f = ""
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	case b[0] == '{' || b[0] == '[':
		return errNotScalar
	default:
		// A number keeps its literal text so that big ids lose no digits.
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			var v bool
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			*f = flexString(strconv.FormatBool(v))
			return nil
		}
		*f = flexString(n.String())
	}
	return nil
}

var errNotScalar = errors.New("expected a string or number")

// millis is an epoch-millisecond timestamp (number or numeric string).
type millis int64

func (m *millis) UnmarshalJSON(b []byte) error {
	var f flexString
	if err := f.UnmarshalJSON(b); err != nil {
		return err
	}
	if f == "" {
		*m = 0
		return nil
	}
	v, err := strconv.ParseFloat(string(f), 64)
	if err != nil {
		return err
	}
	*m = millis(v)
	return nil
}

func (m millis) time() time.Time {
	if m == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(m)).UTC()
}

// metadata is `_metadata` of both history APIs.
type metadata struct {
	Count              int `json:"count"`
	ShardsStatusResult *struct {
		PartialResult bool `json:"partialResult"`
	} `json:"shardsStatusResult"`
}

func (m metadata) partial() bool {
	return m.ShardsStatusResult != nil && m.ShardsStatusResult.PartialResult
}

var errMissingID = errors.New("record without id")

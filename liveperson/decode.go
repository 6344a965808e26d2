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
// values the pipeline matches exactly against a subject.
type Attributes struct {
	CustomerIDs []string // customerInfo.customerId
	Emails      []string // personalInfo contacts email
	Phones      []string // personalInfo contacts phone
	Names       []string // personalInfo name and surname
}

// sdes is the shared shape of `sdes.events[]` in both history APIs.
type sdes struct {
	Events []sdeEvent `json:"events"`
}

type sdeEvent struct {
	CustomerInfo *struct {
		CustomerInfo *struct {
			CustomerID flexString `json:"customerId"`
		} `json:"customerInfo"`
	} `json:"customerInfo"`
	PersonalInfo *struct {
		PersonalInfo *struct {
			Name     flexString `json:"name"`
			Surname  flexString `json:"surname"`
			Contacts []struct {
				PersonalContact *struct {
					Email flexString `json:"email"`
					Phone flexString `json:"phone"`
				} `json:"personalContact"`
			} `json:"contacts"`
		} `json:"personalInfo"`
	} `json:"personalInfo"`
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
		if ci := ev.CustomerInfo; ci != nil && ci.CustomerInfo != nil {
			add(&a.CustomerIDs, ci.CustomerInfo.CustomerID)
		}
		if pi := ev.PersonalInfo; pi != nil && pi.PersonalInfo != nil {
			add(&a.Names, pi.PersonalInfo.Name)
			add(&a.Names, pi.PersonalInfo.Surname)
			for _, c := range pi.PersonalInfo.Contacts {
				if c.PersonalContact != nil {
					add(&a.Emails, c.PersonalContact.Email)
					add(&a.Phones, c.PersonalContact.Phone)
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

// transcriptText gathers strings from a JSON subtree whose shape differs by
// API and version (chat `transcript.lines[].text`, messaging
// `messageRecords[].messageData.msg.text`): every string under a "text" key.
func transcriptText(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	var out []string
	var walk func(any, string)
	walk = func(v any, key string) {
		switch t := v.(type) {
		case map[string]any:
			for k, c := range t {
				walk(c, k)
			}
		case []any:
			for _, c := range t {
				walk(c, key)
			}
		case string:
			if key == "text" {
				out = append(out, t)
			}
		}
	}
	walk(v, "")
	return out
}

var errMissingID = errors.New("record without id")

package lpsim

import (
	"strconv"
	"strings"
	"time"
)

// attributes are a record's customerInfo and personalInfo engagement
// attributes, as the model holds them.
type attributes struct {
	customerID, name, surname, email, phone string
	shape                                   string // the record's own personalInfo shape, "" = the variant's
}

func (c *Chat) attributes() attributes {
	return attributes{c.CustomerID, c.Name, c.Surname, c.Email, c.Phone, c.PersonalInfoShape}
}

func (c *Conversation) attributes() attributes {
	return attributes{c.CustomerID, c.Name, c.Surname, c.Email, c.Phone, c.PersonalInfoShape}
}

// sdeEvents renders attributes as the events of sdes (or unAuthSdes), in the
// shapes the variants choose.
func (s *Sim) sdeEvents(a attributes, at time.Time) []any {
	ev := []any{}
	ts := strconv.FormatInt(at.UnixMilli(), 10)
	if a.customerID != "" {
		info := map[string]any{"serverTimeStamp": ts}
		inner := map[string]any{"customerId": a.customerID, "customerStatus": "active"}
		if s.cfg.Variants.CustomerInfo == ShapeFlat {
			for k, v := range inner {
				info[k] = v
			}
		} else {
			info["customerInfo"] = inner
		}
		ev = append(ev, map[string]any{"sdeType": "CUSTOMER_INFO", "customerInfo": info})
	}
	if a.name != "" || a.surname != "" || a.email != "" || a.phone != "" {
		shape := a.shape
		if shape == "" {
			shape = s.cfg.Variants.PersonalInfo
		}
		info := map[string]any{"serverTimeStamp": ts}
		person := map[string]any{"name": a.name, "surname": a.surname}
		contacts := []any{map[string]any{"personalContact": map[string]any{"email": a.email, "phone": a.phone}}}
		switch shape {
		case ShapeFlat:
			person["contacts"] = contacts
			for k, v := range person {
				info[k] = v
			}
		case ShapeDirect:
			person["email"], person["phone"] = a.email, a.phone
			info["personalInfo"] = person
		case ShapeDirectFlat:
			person["email"], person["phone"] = a.email, a.phone
			for k, v := range person {
				info[k] = v
			}
		default:
			person["contacts"] = contacts
			info["personalInfo"] = person
		}
		ev = append(ev, map[string]any{"sdeType": "PERSONAL_INFO", "personalInfo": info})
	}
	return ev
}

// lineTime is when the ith line of a record starting at start was written.
func lineTime(start time.Time, i int) time.Time { return start.Add(time.Duration(i) * time.Minute) }

// ehTime is the format of Engagement History's and Messaging Interactions'
// "time" fields.
const ehTime = "2006-01-02 15:04:05.000-0700"

// transcriptJSON renders a chat transcript as Engagement History does: the
// visitor's lines carry the visitor's name in "by" (masked with the name).
func transcriptJSON(c *Chat) map[string]any {
	lines := make([]any, len(c.Transcript))
	for i, l := range c.Transcript {
		source, by := "visitor", c.Name
		switch l.Author {
		case AuthorAgent:
			source, by = "agent", "Alex"
		case AuthorSystem:
			source, by = "system", "System"
		}
		if by == "" {
			by = "Visitor"
		}
		at := lineTime(c.Start, i)
		lines[i] = map[string]any{"text": l.Text, "source": source, "by": by, "type": "TEXT_PLAIN",
			"time": at.Format(ehTime), "timeL": at.UnixMilli()}
	}
	return map[string]any{"lines": lines}
}

// messageRecordsJSON renders a conversation's messages as Messaging
// Interactions' messageRecords. Each names its author in sentBy and
// participantId, or in the participantId alone (Variants.SentBy).
func (s *Sim) messageRecordsJSON(c *Conversation) []any {
	recs := make([]any, len(c.Transcript))
	for i, l := range c.Transcript {
		by, participant := "Consumer", c.ConsumerID
		switch l.Author {
		case AuthorAgent:
			by, participant = "Agent", c.Account+".agent-alex"
		case AuthorSystem:
			by, participant = "System", "system"
		}
		at := lineTime(c.Start, i)
		kind, data := messageData(l)
		rec := map[string]any{"type": kind, "messageData": data, "participantId": participant,
			"seq": i, "time": at.Format(ehTime), "timeL": at.UnixMilli()}
		if s.cfg.Variants.SentBy != SentByAbsent {
			rec["sentBy"] = by
		}
		recs[i] = rec
	}
	return recs
}

// messageData renders a message's content with its messageRecords type.
func messageData(l Line) (kind string, data map[string]any) {
	switch l.Kind {
	case KindRich:
		// Structured content: the value is a button's title and the address
		// of its link, never a text field.
		button := map[string]any{"type": "button", "title": l.Text,
			"click": map[string]any{"actions": []any{map[string]any{"type": "link", "name": "Open", "uri": "mailto:" + l.Text}}}}
		content := map[string]any{"type": "vertical", "elements": []any{button}}
		return "RICH_CONTENT", map[string]any{"richContent": map[string]any{"content": content}}
	case KindFile:
		file := map[string]any{"relativePath": l.Path, "fileType": fileType(l.Path)}
		if l.Text != "" {
			file["caption"] = l.Text
		}
		return "HOSTED_FILE", map[string]any{"file": file}
	}
	return "TEXT_PLAIN", map[string]any{"msg": map[string]any{"text": l.Text}}
}

// fileType is a hosted file's type as LivePerson names it: the upper-case
// extension of its path.
func fileType(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 && i < len(path)-1 {
		return strings.ToUpper(path[i+1:])
	}
	return "FILE"
}

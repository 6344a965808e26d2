package liveperson

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// Line is one piece of text of a chat transcript or a conversation's
// messages, with whether the consumer wrote it.
type Line struct {
	Text string
	// Consumer is true when the consumer wrote the text, and also when the
	// author cannot be told: such text must show the deletion mask before the
	// record counts as erased.
	Consumer bool
}

// contentMasked reports whether read content and attributes show LivePerson's
// deletion mask: every consumer-authored line and every attribute value.
// System and agent lines may stay. Content that was not read proves nothing.
func contentMasked(read bool, lines []Line, a Attributes) bool {
	if !read {
		return false
	}
	for _, l := range lines {
		if l.Consumer && !IsDeleted(l.Text) {
			return false
		}
	}
	return a.masked()
}

// carried reports whether an answer held a content key: present and not null.
func carried(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// chatLines reads a chat's `transcript`; read is false when the answer did
// not carry it. Each entry of `transcript.lines` is the consumer's when its
// `source` is "visitor", or when it has no source; text anywhere else in the
// transcript has no known author.
func chatLines(raw json.RawMessage) (lines []Line, read bool) {
	v, ok := parseContent(raw)
	if !ok {
		return nil, false
	}
	var out []Line
	top, isMap := v.(map[string]any)
	if !isMap {
		collectText(v, "text", true, &out)
		return out, true
	}
	for _, k := range sortedKeys(top) {
		entries, isList := top[k].([]any)
		if k != "lines" || !isList {
			collectText(top[k], k, true, &out)
			continue
		}
		for _, e := range entries {
			consumer := true
			if m, ok := e.(map[string]any); ok {
				if src, ok := m["source"].(string); ok && src != "" {
					consumer = strings.EqualFold(src, "visitor")
				}
			}
			// A bare string entry is a line's text.
			collectText(e, "text", consumer, &out)
		}
	}
	return out, true
}

// messageLines reads a conversation's `messageRecords`; read is false when
// the answer did not carry them. A record is the consumer's when `sentBy` is
// "Consumer"; without sentBy, when its participantId is one of consumers, or
// cannot be compared with them.
func messageLines(raw json.RawMessage, consumers []string) (lines []Line, read bool) {
	v, ok := parseContent(raw)
	if !ok {
		return nil, false
	}
	records, isList := v.([]any)
	if !isList {
		records = []any{v}
	}
	var out []Line
	for _, r := range records {
		consumer := true
		if m, ok := r.(map[string]any); ok {
			if by, ok := m["sentBy"].(string); ok && by != "" {
				consumer = strings.EqualFold(by, "consumer")
			} else if pid, ok := m["participantId"].(string); ok && pid != "" && len(consumers) > 0 {
				consumer = slices.Contains(consumers, pid)
			}
		}
		collectText(r, "text", consumer, &out)
	}
	return out, true
}

func parseContent(raw json.RawMessage) (any, bool) {
	if !carried(raw) {
		return nil, false
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	return v, true
}

// textKeys name the values that hold what someone wrote, whatever the shape
// around them (plain messages, rich content, hosted file captions).
var textKeys = map[string]bool{"text": true, "caption": true}

// collectText appends every string under a text key of v, in a stable order.
func collectText(v any, key string, consumer bool, out *[]Line) {
	switch t := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(t) {
			collectText(t[k], k, consumer, out)
		}
	case []any:
		for _, c := range t {
			collectText(c, key, consumer, out)
		}
	case string:
		if textKeys[strings.ToLower(key)] {
			*out = append(*out, Line{Text: t, Consumer: consumer})
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

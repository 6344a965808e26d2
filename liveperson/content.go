package liveperson

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// Line is one entry of a chat transcript or one message of a conversation:
// what it says, who wrote it, and whether it shows the deletion mask.
type Line struct {
	// Texts are the strings under the entry's text keys ("text", "caption"),
	// at any depth, in a stable order.
	Texts []string
	// Consumer is true when the consumer wrote the entry, and also when the
	// author cannot be told: such an entry must be masked before the record
	// counts as erased.
	Consumer bool
	// Masked is true when every text shows the deletion mask and the mask
	// appears in the entry's content. An entry whose content holds no mask at
	// all (rich content, a file link, a shape not understood) is not masked,
	// however little plain text it has.
	Masked bool
}

// contentMasked reports whether read content and attributes show LivePerson's
// deletion mask: every consumer-authored entry and every attribute value.
// System and agent entries may stay. Content that was not read proves nothing.
func contentMasked(read bool, lines []Line, a Attributes) bool {
	if !read {
		return false
	}
	for _, l := range lines {
		if l.Consumer && !l.Masked {
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
// `source` is "visitor", or when it has no source, and is masked when it has
// text and all of it shows the mask (whatever its textType: plain or html).
// Text anywhere else in the transcript has no known author and must show the
// mask too.
func chatLines(raw json.RawMessage) (lines []Line, read bool) {
	v, ok := parseContent(raw)
	if !ok {
		return nil, false
	}
	var out []Line
	top, isMap := v.(map[string]any)
	if !isMap {
		out = appendUnattributed(out, v)
		return out, true
	}
	for _, k := range sortedKeys(top) {
		entries, isList := top[k].([]any)
		if k != "lines" || !isList {
			out = appendUnattributed(out, map[string]any{k: top[k]})
			continue
		}
		for _, e := range entries {
			consumer := true
			if m, ok := e.(map[string]any); ok {
				if src, ok := m["source"].(string); ok && src != "" {
					consumer = strings.EqualFold(src, "visitor")
				}
			}
			// A bare string entry is a line's text. A line is masked only
			// when the mask is in its text: a line without text is not.
			texts := textsOf(e)
			out = append(out, Line{Texts: texts, Consumer: consumer, Masked: len(texts) > 0 && allDeleted(texts)})
		}
	}
	return out, true
}

// appendUnattributed adds content outside the transcript's lines as one entry
// of unknown author, when it holds any text.
func appendUnattributed(out []Line, v any) []Line {
	if texts := textsOf(v); len(texts) > 0 {
		out = append(out, Line{Texts: texts, Consumer: true, Masked: allDeleted(texts)})
	}
	return out
}

// messageLines reads a conversation's `messageRecords`; read is false when
// the answer did not carry them. A record is the consumer's when `sentBy` is
// "Consumer"; without sentBy, when its participantId is one of consumers, or
// cannot be compared with them. A record is masked when all its text shows the
// mask and the mask appears in its messageData (the record itself when it has
// none): a rich content card or a hosted file link that was left as it was
// holds no mask, even when it has no plain text at all.
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
		content := r
		if m, ok := r.(map[string]any); ok {
			if by, ok := m["sentBy"].(string); ok && by != "" {
				consumer = strings.EqualFold(by, "consumer")
			} else if pid, ok := m["participantId"].(string); ok && pid != "" && len(consumers) > 0 {
				consumer = slices.Contains(consumers, pid)
			}
			if d, ok := m["messageData"]; ok && d != nil {
				content = d
			}
		}
		texts := textsOf(r)
		out = append(out, Line{Texts: texts, Consumer: consumer, Masked: allDeleted(texts) && holdsMask(content)})
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

// textsOf returns every string under a text key of v, in a stable order. A
// bare string counts as text.
func textsOf(v any) []string {
	var out []string
	walkStrings(v, "text", 0, func(key, s string) {
		if textKeys[strings.ToLower(key)] {
			out = append(out, s)
		}
	})
	return out
}

// holdsMask reports whether any string in v shows the deletion mask.
func holdsMask(v any) bool {
	found := false
	walkStrings(v, "", 0, func(_, s string) { found = found || IsDeleted(s) })
	return found
}

func allDeleted(texts []string) bool {
	for _, t := range texts {
		if !IsDeleted(t) {
			return false
		}
	}
	return true
}

// maxEmbedded bounds how deep JSON held in strings is unpacked.
const maxEmbedded = 4

// walkStrings calls f for every string in v with the key it sits under, in a
// stable order. A string that holds a JSON object or array (rich content is
// sent that way) is walked as well, so that text inside it counts.
func walkStrings(v any, key string, depth int, f func(key, s string)) {
	switch t := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(t) {
			walkStrings(t[k], k, depth, f)
		}
	case []any:
		for _, c := range t {
			walkStrings(c, key, depth, f)
		}
	case string:
		f(key, t)
		if s := strings.TrimSpace(t); depth < maxEmbedded && s != "" && (s[0] == '{' || s[0] == '[') {
			var inner any
			if json.Unmarshal([]byte(s), &inner) == nil {
				walkStrings(inner, key, depth+1, f)
			}
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

package main

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
)

// TestDocumentedDefaults reads the configuration tables of docs/operations.md (those with a Key
// and a Default column) and checks each documented default against the one the code applies:
// the configuration erasured starts from without a file, whose values come from the service's
// defaults. A key the tables name that the configuration does not have fails too.
func TestDocumentedDefaults(t *testing.T) {
	raw, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	code, err := readConfig(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	// Defaults applied elsewhere than in Config: by the pipeline for each account, and by
	// validate once the retention is known.
	elsewhere := map[string]any{
		"accounts[].monthly_quota": service.DefaultMonthlyQuota,
		"privacy.key_period":       service.DefaultKeyPeriod,
	}
	rows := defaultRows(string(raw))
	if len(rows) < 30 {
		t.Fatalf("found %d documented defaults in docs/operations.md, want the whole key table", len(rows))
	}
	for _, r := range rows {
		var got reflect.Value
		if v, ok := elsewhere[r.key]; ok {
			got = reflect.ValueOf(v)
		} else if strings.Contains(r.key, "[]") || r.key == "privacy.key_dir" {
			// A list's entries have no default; the key directory is found beside the db
			// (keyDirOf).
			continue
		} else if got, ok = configValue(code, r.key); !ok {
			t.Errorf("docs/operations.md documents %s, which the configuration does not have", r.key)
			continue
		} else if name, isLimit := strings.CutPrefix(r.key, "limits."); isLimit {
			// The configuration leaves the limits at zero: the server applies its defaults.
			if got = reflect.ValueOf(server.DefaultLimits()).FieldByName(goName(name)); !got.IsValid() {
				t.Errorf("docs/operations.md documents %s, which server.Limits does not have", r.key)
				continue
			}
		}
		if msg := matchDefault(got, r.def); msg != "" {
			t.Errorf("docs/operations.md: %s defaults to %q, but the code's default is %v: %s", r.key, r.def, got.Interface(), msg)
		}
	}
}

type defaultRow struct{ key, def string }

// defaultRows are the (key, default) pairs of every Markdown table with a Key and a Default
// column. A cell naming several keys gives a row for each; a key continued with ".x" is skipped.
func defaultRows(doc string) []defaultRow {
	var rows []defaultRow
	keyCol, defCol := -1, -1
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "|") {
			keyCol, defCol = -1, -1
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if keyCol < 0 {
			for i, c := range cells {
				switch c {
				case "Key":
					keyCol = i
				case "Default":
					defCol = i
				}
			}
			if keyCol < 0 || defCol < 0 {
				keyCol, defCol = -1, -1
			}
			continue
		}
		if keyCol >= len(cells) || defCol >= len(cells) || strings.HasPrefix(cells[keyCol], "---") {
			continue
		}
		for _, key := range backticked(cells[keyCol]) {
			if !strings.HasPrefix(key, ".") {
				rows = append(rows, defaultRow{key, cells[defCol]})
			}
		}
	}
	return rows
}

// backticked are the `code` spans of a cell.
func backticked(cell string) []string {
	parts := strings.Split(cell, "`")
	var out []string
	for i := 1; i < len(parts); i += 2 {
		out = append(out, parts[i])
	}
	return out
}

// goName is the Go name of a snake_case key: max_calls_per_principal is MaxCallsPerPrincipal.
func goName(key string) string {
	var b strings.Builder
	for _, w := range strings.Split(key, "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// configValue is the field of c at a key path such as "pipeline.workers", found by yaml tags.
func configValue(c Config, path string) (reflect.Value, bool) {
	v := reflect.ValueOf(c)
	for _, name := range strings.Split(path, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		found := false
		for i := range v.NumField() {
			if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); tag == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}, false
		}
	}
	return v, true
}

// matchDefault says how the documented default def differs from the code's got, or "". A
// default in backticks is a value; "off" and "none" are the zero value; other words (required,
// built in, a hash prefix of the key) describe a default the code derives, and match any.
func matchDefault(got reflect.Value, def string) string {
	vals := backticked(def)
	if len(vals) == 0 {
		if w := strings.Fields(def); len(w) > 0 && (w[0] == "off" || w[0] == "none") && !got.IsZero() {
			return "documented as off, but set"
		}
		return ""
	}
	want := vals[0]
	if d, ok := got.Interface().(Duration); ok {
		got = reflect.ValueOf(d.Duration)
	}
	if d, ok := got.Interface().(time.Duration); ok {
		w, err := time.ParseDuration(want)
		if err != nil || w != d {
			return "durations differ"
		}
		return ""
	}
	var same bool
	switch got.Kind() {
	case reflect.String:
		same = got.String() == want
	case reflect.Bool:
		b, err := strconv.ParseBool(want)
		same = err == nil && b == got.Bool()
	case reflect.Int:
		n, err := strconv.ParseInt(want, 10, 64)
		same = err == nil && n == got.Int()
	case reflect.Uint64:
		n, err := strconv.ParseUint(want, 10, 64)
		same = err == nil && n == got.Uint()
	case reflect.Float64:
		f, err := strconv.ParseFloat(want, 64)
		same = err == nil && f == got.Float()
	default:
		return "no comparison for " + got.Kind().String()
	}
	if !same {
		return "values differ"
	}
	return ""
}

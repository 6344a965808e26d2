package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The configuration file is checked against the Config struct before it is decoded: every key
// is looked up by its yaml name, every value is tried against its field's type, so that an
// unknown key, a bad duration and a number that is not one are all reported together, each by
// its key path and line, in the file's words rather than Go's types. The same walk over the
// struct names every scalar setting, and so gives each one its ERASURED_* variable.

var durationType = reflect.TypeFor[Duration]()

// fileProblem is one problem of the configuration file, at a key path and a line.
type fileProblem struct {
	path string
	line int
	msg  string
}

func (p fileProblem) Error() string {
	return fmt.Sprintf("line %d: %s: %s", p.line, cmp.Or(p.path, "the file"), p.msg)
}

// checkNode checks node as the value of a field of type t at key path. It records the line of
// every key path in lines and returns the problems found.
func checkNode(node *yaml.Node, t reflect.Type, path string, lines map[string]int) []error {
	if node.Kind == yaml.DocumentNode {
		var errs []error
		for _, n := range node.Content {
			errs = append(errs, checkNode(n, t, path, lines)...)
		}
		return errs
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	if path != "" {
		lines[path] = node.Line
	}
	bad := func(format string, args ...any) []error {
		return []error{fileProblem{path: path, line: node.Line, msg: fmt.Sprintf(format, args...)}}
	}
	if node.Tag == "!!null" {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		if node.Kind != yaml.ScalarNode {
			return bad("want a duration such as 90s, 30m or 2h")
		}
		if _, err := time.ParseDuration(node.Value); err != nil {
			return bad("%q is not a duration: want a number with a unit (ns, us, ms, s, m, h), such as 90s, 30m or 2h; days are written in hours (480h)", node.Value)
		}
		return nil
	case t.Kind() == reflect.Struct:
		if node.Kind != yaml.MappingNode {
			return bad("want a mapping of keys")
		}
		var errs []error
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			f, ok := yamlField(t, k.Value)
			if !ok {
				errs = append(errs, fileProblem{path: join(path, k.Value), line: k.Line, msg: "unknown key"})
				continue
			}
			errs = append(errs, checkNode(v, f.Type, join(path, k.Value), lines)...)
		}
		return errs
	case t.Kind() == reflect.Map:
		if node.Kind != yaml.MappingNode {
			return bad("want a mapping of keys")
		}
		var errs []error
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			errs = append(errs, checkNode(v, t.Elem(), join(path, k.Value), lines)...)
		}
		return errs
	case t.Kind() == reflect.Slice:
		if node.Kind != yaml.SequenceNode {
			return bad("want a list")
		}
		var errs []error
		for i, v := range node.Content {
			errs = append(errs, checkNode(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i), lines)...)
		}
		return errs
	}
	if node.Kind != yaml.ScalarNode {
		return bad("want %s", kindWord(t))
	}
	if err := node.Decode(reflect.New(t).Interface()); err != nil {
		return bad("%q is not %s", node.Value, kindWord(t))
	}
	return nil
}

// kindWord names a scalar type in the file's words.
func kindWord(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "a whole number, not negative"
	case reflect.Float64, reflect.Float32:
		return "a number"
	}
	return "a single value"
}

// yamlField is the field of struct t whose yaml name is key.
func yamlField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && yamlName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// envSetting is one scalar setting and its environment variable.
type envSetting struct {
	key string // the yaml key path, e.g. pipeline.search_lag
	env string // ERASURED_PIPELINE_SEARCH_LAG
	idx []int  // the field's index path in Config
}

// envSettings are every scalar setting of the file, and the lists of strings whose variable
// separates them by commas (other lists and maps are written in the file only): the variable
// is ERASURED_ and the key path in upper case, dots as underscores.
var envSettings = func() []envSetting {
	var out []envSetting
	var walk func(t reflect.Type, path string, idx []int)
	walk = func(t reflect.Type, path string, idx []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			key, at := join(path, name), append(append([]int(nil), idx...), i)
			switch {
			case f.Type == durationType, f.Type == listType:
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, key, at)
				continue
			case f.Type.Kind() == reflect.Slice, f.Type.Kind() == reflect.Map, f.Type.Kind() == reflect.Pointer:
				continue
			}
			out = append(out, envSetting{key: key, env: "ERASURED_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_")), idx: at})
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
}()

// applyEnv sets every setting whose ERASURED_* variable is set, over the file's value.
func (c *Config) applyEnv(getenv func(string) string) []error {
	var errs []error
	v := reflect.ValueOf(c).Elem()
	for _, s := range envSettings {
		raw := getenv(s.env)
		if raw == "" {
			continue
		}
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: raw}
		f := v.FieldByIndex(s.idx)
		if f.Type() == listType {
			var l List
			for _, item := range strings.Split(raw, ",") {
				if item = strings.TrimSpace(item); item != "" {
					l = append(l, item)
				}
			}
			f.Set(reflect.ValueOf(l))
			continue
		}
		if f.Kind() != reflect.String { // let yaml read numbers and booleans as such
			n.Tag = ""
		}
		if probs := checkNode(n, f.Type(), s.key, map[string]int{}); len(probs) > 0 {
			errs = append(errs, fmt.Errorf("%s (for %s): %s", s.env, s.key, probs[0].(fileProblem).msg))
			continue
		}
		if err := n.Decode(f.Addr().Interface()); err != nil {
			errs = append(errs, fmt.Errorf("%s (for %s): %v", s.env, s.key, err))
		}
	}
	return errs
}

// withLines adds to each problem of err that begins with a key path the line where the file
// gives that path, or the nearest enclosing key it gives.
func withLines(err error, lines map[string]int) error {
	if err == nil || len(lines) == 0 {
		return err
	}
	var out []error
	for _, e := range flatten(err) {
		var fp fileProblem
		if errors.As(e, &fp) {
			out = append(out, e)
			continue
		}
		msg := e.Error()
		path := msg
		if i := strings.IndexAny(path, " :("); i >= 0 {
			path = path[:i]
		}
		for path != "" {
			if line, ok := lines[path]; ok {
				e = lineError{err: e, line: line, path: path}
				break
			}
			i := strings.LastIndexAny(path, ".[")
			if i < 0 {
				break
			}
			path = path[:i]
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// lineError is a problem reported by a check, with the line of its key.
type lineError struct {
	err  error
	path string
	line int
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e lineError) Unwrap() error { return e.err }

// flatten lists the problems of an error joined with errors.Join, at any depth.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// checkURL checks the Domain API URL setting as the LivePerson client does when erasured
// starts, in the client's words: http or https, a host, and no path (the client builds every
// path itself).
func checkURL(key, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %q is not a URL", key, raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s: scheme %s is not http or https", key, strconv.Quote(u.Scheme))
	case u.Host == "":
		return fmt.Errorf("%s: %q has no host", key, raw)
	case strings.Trim(u.Path, "/") != "":
		return fmt.Errorf("%s: %q has a path: the domain API URL must be http(s)://host[:port]", key, raw)
	}
	return nil
}

// checkPort checks the port of a listen address (host:port); checkListeners judges the host,
// and the address as a whole.
func checkPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("port %q of %q is not a number from 0 to 65535", port, addr)
	}
	return nil
}

// parseLogLevel reads log_level / --log-level / ERASURED_LOG_LEVEL; "" is info.
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not a log level: want debug, info, warn or error", s)
}

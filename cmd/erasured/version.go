package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// buildVersion is what the Go toolchain recorded in the binary about its build.
type buildVersion struct {
	Version  string // the module version: a tag, a pseudo-version, or "(devel)"
	Revision string // the source revision; "unknown" when built outside version control
	Time     string // the revision's commit time (RFC 3339); "" when unknown
	Modified bool   // the working tree had uncommitted changes
	Go       string // the Go version, e.g. go1.26.8
}

// readVersion reads the build information embedded in the binary.
func readVersion() buildVersion {
	v := buildVersion{Version: "(devel)", Revision: "unknown", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// writeVersion prints `erasured --version`: the version, the revision and the Go version.
func writeVersion(w io.Writer) error {
	v := readVersion()
	rev := v.Revision
	if v.Time != "" {
		rev += " (" + v.Time + ")"
	}
	if v.Modified {
		rev += ", modified"
	}
	_, err := fmt.Fprintf(w, "erasured %s\nrevision: %s\ngo: %s %s/%s\n", v.Version, rev, v.Go, runtime.GOOS, runtime.GOARCH)
	return err
}

package main

// What the canary test scans, and how it opens old copies of the database.

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store/boltstore"
)

// canaryScan collects what erasured showed the outside world, by channel.
type canaryScan struct {
	mu       sync.Mutex
	channels map[string]*bytes.Buffer
}

func (s *canaryScan) add(channel, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.channels == nil {
		s.channels = map[string]*bytes.Buffer{}
	}
	b, ok := s.channels[channel]
	if !ok {
		b = &bytes.Buffer{}
		s.channels[channel] = b
	}
	b.WriteString(text)
	b.WriteByte('\n')
}

func (s *canaryScan) addProto(channel string, m proto.Message) {
	raw, _ := protojson.Marshal(m)
	s.add(channel, string(raw))
}

func (s *canaryScan) addErr(channel string, err error) {
	if err == nil {
		return
	}
	s.add(channel, err.Error())
	if st, ok := status.FromError(err); ok {
		s.addProto(channel, st.Proto()) // the details too (ErrorInfo, field violations)
	}
}

// check fails for every channel holding a canary, and for a channel that is empty (a scan of
// nothing proves nothing).
func (s *canaryScan) check(t *testing.T, when string, want ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range want {
		b := s.channels[ch]
		if b == nil || b.Len() == 0 {
			t.Errorf("%s: nothing was read from %s", when, ch)
			continue
		}
		for _, c := range canaries {
			if bytes.Contains(b.Bytes(), []byte(c)) {
				i := bytes.Index(b.Bytes(), []byte(c))
				t.Errorf("%s: %s holds the canary %q: …%s…", when, ch, c, b.Bytes()[max(0, i-80):min(b.Len(), i+len(c)+40)])
			}
		}
	}
}

// keysOpen opens a copy of a database file with the master key and a copy of a key directory,
// and counts the data keys they unwrap and those they do not. Both are copied first: opening a
// keyring may add a period key, and the binary's files stay untouched.
func (e *canaryEnv) keysOpen(dbFile, keyDir string) service.KeyCheck {
	e.t.Helper()
	tmp := e.t.TempDir()
	copyTree(e.t, keyDir, filepath.Join(tmp, "keys"))
	copyTree(e.t, dbFile, filepath.Join(tmp, "erasure.db"))
	db, err := boltstore.Open(filepath.Join(tmp, "erasure.db"), boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	keys, err := service.OpenKeyring(masterKeyID("", e.master), e.master, filepath.Join(tmp, "keys"), 2*time.Second, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	svc, err := service.New(db, keys, service.Config{Retention: 15 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	kc, err := svc.CheckKeys()
	if err != nil {
		e.t.Fatal(err)
	}
	return kc
}

// copyTree copies a file, or a directory of files.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	fi, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() {
		raw, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range ents {
		if en.Type().IsRegular() {
			copyTree(t, filepath.Join(from, en.Name()), filepath.Join(to, en.Name()))
		}
	}
}

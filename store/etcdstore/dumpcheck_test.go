package etcdstore

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// TestCheckDump: CheckDump passes a Backup's dump, saying its revision, key count and size, and
// refuses every damage Restore refuses (and a dump Restore would refuse for its missing format
// key), each with its reason, without an etcd.
func TestCheckDump(t *testing.T) {
	db := openTest(t, testOptions(newPrefix(t), testBuckets))
	storetest.AppendEvents(t, db, "a", "b", "c")
	err := db.Update(storetest.Context(t), func(tx store.Tx) error {
		return tx.Put(bucketA, []byte("big"), bytes.Repeat([]byte("v"), 200<<10)) // beyond one read buffer
	})
	if err != nil {
		t.Fatal(err)
	}
	data, rev := dump(t, db)
	if !IsDump(data[:DumpHeaderLen]) {
		t.Fatal("IsDump(a dump's header) = false")
	}
	info, err := CheckDump(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("CheckDump(a Backup's dump) = %v", err)
	}
	var records uint64
	if _, err := readDump(data, func(string, []byte) error { records++; return nil }); err != nil {
		t.Fatal(err)
	}
	if info.Rev != rev || info.Records != records || info.Size != int64(len(data)) || records < 8 {
		t.Errorf("CheckDump = %+v; want revision %d, %d records, %d bytes", info, rev, records, len(data))
	}

	damaged := bytes.Clone(data)
	damaged[len(damaged)/2] ^= 1
	version := bytes.Clone(data)
	version[len(dumpMagic)+7] = 2
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no dump header"},
		{"a bbolt file", append(make([]byte, 16), 0xed, 0xda, 0x0c, 0xed), "no dump header"},
		{"the header only", data[:len(dumpMagic)+16], "truncated"},
		{"cut in a record", data[:len(data)/2], "truncated"},
		{"cut in the checksum", data[:len(data)-2], "truncated"},
		{"a flipped bit", damaged, "checksum mismatch"},
		{"a newer version", version, "version 2"},
		{"bytes after the checksum", append(bytes.Clone(data), 0), "1 bytes after its checksum"},
		{"no format key", dumpOf(rev, map[string]string{"b/a/k": "v"}), "no format key"},
		{"a wrong count", withCount(dumpOf(rev, map[string]string{metaFormat: "x"}), 2), "record count mismatch"},
	} {
		_, err := CheckDump(bytes.NewReader(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckDump(%s) = %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	if IsDump([]byte("\x00\x00\x00\x00")) || IsDump(nil) {
		t.Error("IsDump is true for what is no dump")
	}
}

// dumpOf writes a dump of records as Backup would.
func dumpOf(rev uint64, records map[string]string) []byte {
	var b bytes.Buffer
	w := newDumpWriter(&b, rev)
	for k, v := range records {
		w.record(k, []byte(v))
	}
	if _, err := w.close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// withCount rewrites a dump's record count, with a checksum that matches.
func withCount(d []byte, n uint64) []byte {
	d = bytes.Clone(d)
	body := d[:len(d)-4]
	binary.BigEndian.PutUint64(body[len(body)-8:], n)
	binary.BigEndian.PutUint32(d[len(d)-4:], crc32.Checksum(body, crcTable))
	return d
}

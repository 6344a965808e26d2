package etcdstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// DumpInfo is what CheckDump read in a dump.
type DumpInfo struct {
	// Rev is the store's revision in the dump (Snapshot.Rev of the Backup that wrote it).
	Rev uint64
	// Records is how many keys the dump holds.
	Records uint64
	// Size is the dump's length in bytes.
	Size int64
}

// maxDumpKey bounds a key's length in a dump: etcd refuses requests above its
// --max-request-bytes (1.5 MiB by default), so a longer key is damage, not data.
const maxDumpKey = 4 << 20

// IsDump reports whether head, the first bytes of a file, begin as a dump of Backup does. It
// tells a dump from a bbolt file; only CheckDump says whether it is whole.
func IsDump(head []byte) bool {
	return bytes.HasPrefix(head, []byte(dumpMagic)) ||
		(len(head) < len(dumpMagic) && len(head) > 0 && bytes.HasPrefix([]byte(dumpMagic), head))
}

// DumpHeaderLen is how many bytes IsDump needs to tell a dump apart.
const DumpHeaderLen = len(dumpMagic)

// CheckDump reads a dump written by Backup from r to its end, without an etcd, and checks what
// Restore checks before writing anything: the header and version, every record, the record
// count, the CRC-32C and that nothing follows it, and the format key a restored store opens by.
// It reads r as a stream: the dump's keys are not kept, its values are skipped. A dump that
// passes restores (into an empty prefix of an etcd that takes its keys).
func CheckDump(r io.Reader) (DumpInfo, error) {
	corrupt := func(what string) error { return fmt.Errorf("store: not a valid etcd store dump: %s", what) }
	cr := &crcReader{r: bufio.NewReaderSize(r, 64<<10), crc: crc32.New(crcTable)}
	short := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt("it ends early (truncated)")
		}
		return fmt.Errorf("store: read etcd store dump: %w", err)
	}
	head := make([]byte, len(dumpMagic)+16)
	if _, err := io.ReadFull(cr, head); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return DumpInfo{}, short(err)
	} else if err != nil || string(head[:len(dumpMagic)]) != dumpMagic {
		return DumpInfo{}, corrupt("no dump header")
	}
	if v := binary.BigEndian.Uint64(head[len(dumpMagic):]); v != dumpVersion {
		return DumpInfo{}, fmt.Errorf("store: etcd store dump version %d, this binary reads %d", v, dumpVersion)
	}
	info := DumpInfo{Rev: binary.BigEndian.Uint64(head[len(dumpMagic)+8:])}
	format := false
	key := make([]byte, 0, 256)
	for {
		kl, err := binary.ReadUvarint(cr)
		if err != nil {
			return DumpInfo{}, short(err)
		}
		if kl == 0 {
			break
		}
		if kl > maxDumpKey {
			return DumpInfo{}, corrupt("bad record")
		}
		key = key[:0]
		if cap(key) < int(kl) {
			key = make([]byte, 0, kl)
		}
		key = key[:kl]
		if _, err := io.ReadFull(cr, key); err != nil {
			return DumpInfo{}, short(err)
		}
		vl, err := binary.ReadUvarint(cr)
		if err != nil {
			return DumpInfo{}, short(err)
		}
		if n, err := io.CopyN(io.Discard, cr, int64(vl)); err != nil || n != int64(vl) {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return DumpInfo{}, short(err)
		}
		if string(key) == metaFormat {
			format = true
		}
		info.Records++
	}
	var tail [8]byte
	if _, err := io.ReadFull(cr, tail[:]); err != nil {
		return DumpInfo{}, short(err)
	}
	sum := cr.crc.Sum32()
	var crc [4]byte
	if _, err := io.ReadFull(cr.r, crc[:]); err != nil {
		return DumpInfo{}, short(err)
	}
	if binary.BigEndian.Uint32(crc[:]) != sum {
		return DumpInfo{}, corrupt("checksum mismatch (truncated or damaged)")
	}
	if n, _ := io.Copy(io.Discard, cr.r); n != 0 {
		return DumpInfo{}, corrupt(fmt.Sprintf("%d bytes after its checksum", n))
	}
	if binary.BigEndian.Uint64(tail[:]) != info.Records {
		return DumpInfo{}, corrupt("record count mismatch")
	}
	if !format {
		return DumpInfo{}, corrupt("it holds no format key")
	}
	info.Size = cr.n + 4
	return info, nil
}

// crcReader hashes and counts what it reads.
type crcReader struct {
	r   *bufio.Reader
	crc hash.Hash32
	n   int64
	one [1]byte
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// ReadByte serves binary.ReadUvarint one byte at a time, hashed like the rest.
func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.one[0] = b
		c.crc.Write(c.one[:])
		c.n++
	}
	return b, err
}

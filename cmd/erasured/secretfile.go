package main

import (
	"fmt"
	"io"
	"os"
)

// Two kinds of file decide what erasured trusts, and each is checked on the descriptor it is
// read from: the file is opened once, its mode and owner are taken from that descriptor, and
// the bytes come from it, so nothing can swap the file between the check and the read. A
// symbolic link (a Kubernetes secret volume is made of them) is followed, and the file checked
// is its target, as opened.

// fileKind is what a file holds, and so what is checked.
type fileKind int

const (
	// secretFile holds a key or a secret: neither group nor others may read or write it, and it
	// belongs to the user erasured runs as, or to root.
	secretFile fileKind = iota
	// trustFile decides who is trusted (the configuration file, auth.tokens_file, the TLS
	// certificate and the client CA): neither group nor others may write it.
	trustFile
)

// euid is the effective user id, a variable so that tests can stand in another user.
var euid = os.Geteuid

// readSecretFile reads a file holding a key or a secret, refusing it, by name, when group or
// others may read or write it or when it belongs to another user than erasured's or root, so
// that a secret left open stops the service at start instead of leaking quietly.
func readSecretFile(path string) ([]byte, error) { return readChecked(path, secretFile) }

// checkSecretFile checks a secret file as readSecretFile does, without reading it.
func checkSecretFile(path string) error { return checkFile(path, secretFile) }

// readTrustFile reads a file that decides who is trusted, refusing it, by name, when group or
// others may write it: whoever can write it can make themselves a caller.
func readTrustFile(path string) ([]byte, error) { return readChecked(path, trustFile) }

// checkTrustFile checks a file as readTrustFile does, without reading it.
func checkTrustFile(path string) error { return checkFile(path, trustFile) }

func readChecked(path string, kind fileKind) ([]byte, error) {
	f, err := openChecked(path, kind)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func checkFile(path string, kind fileKind) error {
	f, err := openChecked(path, kind)
	if err != nil {
		return err
	}
	return f.Close()
}

// openChecked opens path and checks the file opened. It opens without blocking, so that a
// FIFO put in a secret's place is refused instead of hanging the start.
func openChecked(path string, kind fileKind) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|openNonBlock, 0)
	if err != nil {
		return nil, err
	}
	if err := checkOpened(f, path, kind); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func checkOpened(f *os.File, path string, kind fileKind) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	perm := fi.Mode().Perm()
	switch kind {
	case secretFile:
		if perm&0o077 != 0 {
			return fmt.Errorf("%s is accessible by group or others (mode %04o): it holds a secret; chmod 600 it", path, perm)
		}
		if uid, ok := fileOwner(fi); ok && uid != 0 && uid != euid() {
			return fmt.Errorf("%s belongs to user %d, not to the user erasured runs as (%d) or root: it holds a secret; chown it", path, uid, euid())
		}
	case trustFile:
		if perm&0o022 != 0 {
			return fmt.Errorf("%s may be written by group or others (mode %04o): it decides who is trusted; chmod go-w it", path, perm)
		}
	}
	return nil
}

package main

import (
	"fmt"
	"os"
)

// readSecretFile reads a file holding a key or a secret. It refuses a file that group or others
// may read or write, naming it, so that a secret left world-readable stops the service at start
// instead of leaking quietly.
func readSecretFile(path string) ([]byte, error) {
	if err := checkSecretFile(path); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// checkSecretFile refuses a secret file whose permissions let group or others at it.
func checkSecretFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s is accessible by group or others (mode %04o): it holds a secret; chmod 600 it", path, perm)
	}
	return nil
}

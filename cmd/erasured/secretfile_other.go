//go:build !unix

package main

import "io/fs"

// openNonBlock: only unix systems need it.
const openNonBlock = 0

// fileOwner: files have no unix owner here; the mode check stands alone.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }

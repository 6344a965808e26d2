package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// TLSFiles serves a certificate and key read from files and, with a client CA, asks for and
// verifies client certificates. Reload reads the files again; connections already open keep
// the state they were set up with, new ones get the new files, because each handshake takes
// its configuration from the current files (tls.Config.GetConfigForClient).
//
// So a new client CA does not cut a connection whose certificate verified under the old one:
// the chain is verified once, at the handshake. Each call (and each open stream, once the
// callers change) still looks the certificate's common name up in the current callers, so
// removing a caller's certificate entry (Auth.Update) refuses it at once; to shut out every
// certificate of a CA without naming them, restart the server.
type TLSFiles struct {
	certFile, keyFile, clientCAFile string
	read                            TLSReaders
	cur                             atomic.Pointer[tls.Config]
}

// TLSReaders read the files of a TLSFiles, so that the caller decides what a file must be to be
// trusted: Key reads the private key, Public the certificate and the client CA. A nil reader
// is os.ReadFile.
type TLSReaders struct {
	Key, Public func(path string) ([]byte, error)
}

// LoadTLS reads a certificate, its key and, unless clientCAFile is "", the CA that signs client
// certificates (mTLS), with os.ReadFile.
func LoadTLS(certFile, keyFile, clientCAFile string) (*TLSFiles, error) {
	return LoadTLSFrom(certFile, keyFile, clientCAFile, TLSReaders{})
}

// LoadTLSFrom is LoadTLS reading the files with r, at the start and at every reload.
func LoadTLSFrom(certFile, keyFile, clientCAFile string, r TLSReaders) (*TLSFiles, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: cert_file and key_file are both required")
	}
	if r.Key == nil {
		r.Key = os.ReadFile
	}
	if r.Public == nil {
		r.Public = os.ReadFile
	}
	t := &TLSFiles{certFile: certFile, keyFile: keyFile, clientCAFile: clientCAFile, read: r}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload reads the files again and puts them in use. On error the files loaded before stay in
// use.
func (t *TLSFiles) Reload() error {
	next, err := t.Load()
	if err != nil {
		return err
	}
	next.Commit()
	return nil
}

// TLSUpdate is the files as Load read and checked them, not yet in use: a reload that must
// succeed as a whole (the callers and the TLS files together) loads first, and commits only
// once everything else has been accepted, so that nothing is ever rolled back.
type TLSUpdate struct {
	t   *TLSFiles
	cfg *tls.Config
}

// Load reads and checks the files, changing nothing in use.
func (t *TLSFiles) Load() (*TLSUpdate, error) {
	certPEM, err := t.read.Public(t.certFile)
	if err != nil {
		return nil, fmt.Errorf("tls: read certificate: %w", err)
	}
	keyPEM, err := t.read.Key(t.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: read key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s and %s: %w", t.certFile, t.keyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if t.clientCAFile != "" {
		pem, err := t.read.Public(t.clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: %s holds no PEM certificate", t.clientCAFile)
		}
		cfg.ClientCAs = pool
		// A client certificate is verified when one is given, but not demanded: a caller that
		// authenticates with a bearer token over TLS needs none. A call without a verified
		// certificate or a valid token is still refused, by the authentication interceptor,
		// and a certificate that does not verify fails the handshake.
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return &TLSUpdate{t: t, cfg: cfg}, nil
}

// Commit puts the loaded files in use for every handshake from now on.
func (u *TLSUpdate) Commit() { u.t.cur.Store(u.cfg) }

// Config is the TLS configuration for a server (the gRPC server and the metrics HTTP server).
// Each handshake uses the files loaded last.
func (t *TLSFiles) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			// A copy per handshake: the caller may adjust it (gRPC adds its ALPN protocol).
			return t.cur.Load().Clone(), nil
		},
	}
}

package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// servedCertificate is the common name of the certificate the server presents to a new
// connection.
func servedCertificate(t *testing.T, e *tlsEnv) string {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(e.serverCA.cert)
	conn, err := tls.Dial("tcp", e.addr, &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestReloadKeepsStreamsAndServesNewCertificate: a Watch stream opened before Reload keeps
// going; a connection made after it gets the new certificate; a Reload of bad files keeps the
// files loaded before.
func TestReloadKeepsStreamsAndServesNewCertificate(t *testing.T) {
	e := newTLSEnv(t, testCallers(), Options{Heartbeat: 20 * time.Millisecond})
	if cn := servedCertificate(t, e); cn != "erasured" {
		t.Fatalf("served certificate %q before reload", cn)
	}
	conn := e.dial()
	client := erasurev1.NewErasureServiceClient(conn)
	ctx, cancel := context.WithCancel(withToken(context.Background(), "secret-viewer"))
	defer cancel()
	watch, err := client.Watch(ctx, &erasurev1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}

	c, k := e.serverCA.issue(t, "erasured-renewed", true)
	writeFile(t, e.files.certFile, c)
	writeFile(t, e.files.keyFile, k)
	if err := e.files.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn := servedCertificate(t, e); cn != "erasured-renewed" {
		t.Errorf("new connection after reload gets %q, want the renewed certificate", cn)
	}
	for range 3 { // heartbeats keep coming on the stream opened before
		if _, err := watch.Recv(); err != nil {
			t.Fatalf("Watch after reload: %v", err)
		}
	}
	if _, err := client.List(ctx, &erasurev1.ListRequest{AccountId: "1234"}); err != nil {
		t.Errorf("call on the connection opened before reload: %v", err)
	}

	writeFile(t, e.files.keyFile, []byte("not a key"))
	if err := e.files.Reload(); err == nil {
		t.Fatal("Reload accepted a bad key")
	}
	if cn := servedCertificate(t, e); cn != "erasured-renewed" {
		t.Errorf("after a failed reload the server presents %q", cn)
	}
}

func TestLoadTLSRefuses(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "ca")
	certFile, keyFile, caFile := tlsFiles(t, dir, ca, ca)
	if _, err := LoadTLS(certFile, keyFile, ""); err != nil {
		t.Fatalf("without client CA: %v", err)
	}
	if _, err := LoadTLS(certFile, "", ""); err == nil {
		t.Error("no key file accepted")
	}
	bad := filepath.Join(dir, "bad-ca.crt")
	if err := os.WriteFile(bad, []byte("nothing here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTLS(certFile, keyFile, bad); err == nil {
		t.Error("client CA without a certificate accepted")
	}
	f, err := LoadTLS(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := f.Config().GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.VerifyClientCertIfGiven || cfg.ClientCAs == nil {
		t.Errorf("config: min version %x, client auth %v", cfg.MinVersion, cfg.ClientAuth)
	}
}

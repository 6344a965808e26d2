package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

var serial int64 = 100

// issue makes a certificate for cn: a server certificate for 127.0.0.1, or a client one.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func (ca *testCA) clientCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	c, k := ca.issue(t, cn, false)
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsFiles writes a server certificate signed by serverCA and the client CA to dir.
func tlsFiles(t *testing.T, dir string, serverCA, clientCA *testCA) (certFile, keyFile, caFile string) {
	t.Helper()
	c, k := serverCA.issue(t, "erasured", true)
	certFile, keyFile, caFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "clients-ca.crt")
	writeFile(t, certFile, c)
	writeFile(t, keyFile, k)
	writeFile(t, caFile, clientCA.pem)
	return certFile, keyFile, caFile
}

func tokenHash(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// withToken adds a bearer token to a call's outgoing metadata.
func withToken(ctx context.Context, tok string) context.Context {
	if tok == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// tlsEnv is a real server on loopback TCP with TLS, mTLS and bearer tokens.
type tlsEnv struct {
	t        *testing.T
	db       store.DB
	svc      *service.Service
	srv      *Server
	addr     string
	serverCA *testCA
	clientCA *testCA
	files    *TLSFiles
	logs     *lockedBuffer
}

// newTLSEnv serves a server with the given callers; opts.Logger, Auth and TLS are set here.
func newTLSEnv(t *testing.T, callers Callers, opts Options) *tlsEnv {
	t.Helper()
	e := &tlsEnv{t: t, serverCA: newCA(t, "server CA"), clientCA: newCA(t, "client CA"), logs: &lockedBuffer{}}
	dir := t.TempDir()
	certFile, keyFile, caFile := tlsFiles(t, dir, e.serverCA, e.clientCA)
	var err error
	if e.files, err = LoadTLS(certFile, keyFile, caFile); err != nil {
		t.Fatal(err)
	}
	if opts.Auth, err = NewAuth(callers); err != nil {
		t.Fatal(err)
	}
	opts.TLS = e.files
	opts.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	e.start(t, opts)
	return e
}

func (e *tlsEnv) start(t *testing.T, opts Options) {
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "erasure.db"), boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := service.NewKeyring("test", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	if e.svc, err = service.New(db, keys, service.Config{Logger: opts.Logger}); err != nil {
		t.Fatal(err)
	}
	if e.srv, err = New(e.svc, opts); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		db.Close()
	})
}

// dial connects over TLS, presenting certs (none, or one client certificate).
func (e *tlsEnv) dial(certs ...tls.Certificate) *grpc.ClientConn {
	e.t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(e.serverCA.cert)
	return e.dialWith(credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}))
}

func (e *tlsEnv) dialWith(creds credentials.TransportCredentials) *grpc.ClientConn {
	e.t.Helper()
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

func (e *tlsEnv) client(certs ...tls.Certificate) erasurev1.ErasureServiceClient {
	return erasurev1.NewErasureServiceClient(e.dial(certs...))
}
